"""Steps that span sites: the ranks of a distributed step, or a federated step and its participants.

**distributed**: one process per rank, each at its own site with its own copy of the inputs (staged at
that site's store: residency is checked on every copy), started together with the rendezvous in the
environment (``STRATUS_RANK``, ``STRATUS_WORLD_SIZE``, ``STRATUS_COORDINATOR``, ``STRATUS_SITES``,
``STRATUS_DIST_TIMEOUT_S``). Rank 0 runs at the coordinator and alone publishes the outputs. When any
rank fails the others are cancelled at once, so no rank is left waiting in a collective. When every rank
is at one site whose executor starts gangs (``ray``), they are submitted there as one unit: one Ray job
holding a placement group, the coordinator on rank 0's node (see :mod:`stratus.executors.ray_gang`).

**federated**: the step runs at the coordinator (the federated server); each participant's datasets are
fetched from that participant's own store into a folder of its own and handed over in
``ctx.participants``; nothing is copied between sites. Only model updates travel, and the step reports
their bytes (``exchange_bytes``), which are recorded as transfers and billed as egress.

Every machine is billed for the step's duration at its own price.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from stratus.config import parse_input
from stratus.executors import StepResult, SupportsGangs
from stratus.planner import Placement
from stratus.planner.multisite import data_sites
from stratus.processes import free_ports
from stratus.runner.context import RunContext
from stratus.runner.execution import Member, bill, run_group
from stratus.runner.staging import stage_inputs, step_request
from stratus.step import ENV_COORDINATOR, ENV_RANK, ENV_SITES, ENV_TIMEOUT, ENV_WORLD_SIZE

__all__ = ["DEFAULT_TIMEOUT_S", "participant_sites", "run_multi_site"]

DEFAULT_TIMEOUT_S = 120.0


def participant_sites(ctx: RunContext, step: str, placement: Placement) -> list[str]:
    """Ranks in order (coordinator first), or a federated step's data sites."""
    spec = ctx.pipeline.steps[step]
    if spec.kind == "federated":
        return data_sites(spec, ctx.pipeline)
    return [placement.site, *(q.site for q in placement.participants)]


def run_multi_site(
    ctx: RunContext,
    step: str,
    placement: Placement,
    attempt: int,
    inputs: Mapping[str, str],
    workdir: Path,
    machines: list[str],
) -> tuple[StepResult, Mapping[str, Path]]:
    """Run every process of the step; the combined result, and where the coordinator wrote the outputs.

    ``machines`` (every site taking part, coordinator first) is what the attempt records as its sites;
    the step's metrics show it too, as ``sites``.
    """
    spec = ctx.pipeline.steps[step]
    if spec.kind == "distributed":
        result, outputs = _distributed(ctx, step, placement, attempt, inputs, workdir)
    else:
        result, outputs = _federated(ctx, step, placement, attempt, inputs, workdir)
    if result.ok:
        _record_exchange(ctx, step, placement.site, result.metrics)
        result = replace(result, metrics={**result.metrics, "sites": machines})
    return result, outputs


def _distributed(
    ctx: RunContext, step: str, placement: Placement, attempt: int, inputs: Mapping[str, str], workdir: Path
) -> tuple[StepResult, Mapping[str, Path]]:
    ranks = participant_sites(ctx, step, placement)
    (port,) = free_ports(1)
    timeout = str(ctx.pipeline.steps[step].params.get("timeout_s", DEFAULT_TIMEOUT_S))
    members: list[Member] = []
    for rank, site in enumerate(ranks):
        folder = workdir if rank == 0 else workdir / f"rank-{rank}"
        env = {
            ENV_RANK: str(rank),
            ENV_WORLD_SIZE: str(len(ranks)),
            ENV_COORDINATOR: f"127.0.0.1:{port}",
            ENV_SITES: ",".join(ranks),
            ENV_TIMEOUT: timeout,
            "OMP_NUM_THREADS": "1",  # one thread per rank: on a shared machine more threads ran 10x slower
        }
        local = stage_inputs(ctx, step, site, inputs, folder / "inputs")
        request = step_request(ctx, step, site, folder, local, env=env)
        members.append(Member(request, _at(placement, site), label=f"rank {rank}"))
    _submit_as_gang(ctx, members)
    results = run_group(ctx, members, attempt=attempt)
    for rank in range(1, len(ranks)):
        shutil.rmtree(workdir / f"rank-{rank}", ignore_errors=True)
    return _combined(results, members), members[0].request.outputs


def _submit_as_gang(ctx: RunContext, members: list[Member]) -> None:
    """Ranks all at one site whose executor starts gangs (Ray: one job holding a placement group) are
    submitted together there; ranks across sites are left to ``run_group`` to submit one by one."""
    sites = {m.placement.site for m in members}
    if len(members) < 2 or len(sites) != 1:
        return
    executor = ctx.sites.executors[sites.pop()]
    if isinstance(executor, SupportsGangs):
        handles = executor.submit_gang([m.request for m in members])
        for member, handle in zip(members, handles, strict=True):
            member.handle = handle


def _federated(
    ctx: RunContext, step: str, placement: Placement, attempt: int, inputs: Mapping[str, str], workdir: Path
) -> tuple[StepResult, Mapping[str, Path]]:
    participants: dict[str, dict[str, Path]] = {}
    for ref, sha in inputs.items():
        _, dataset = parse_input(ref)
        site = ctx.pipeline.datasets[dataset].site
        # Fetched from the participant's own store into its own folder: ensure_at moves 0 bytes.
        folder = workdir / "sites" / site
        participants.setdefault(site, {}).update(stage_inputs(ctx, step, site, {ref: sha}, folder))
    request = step_request(ctx, step, placement.site, workdir, {}, participants=participants)
    coordinator = Member(request, placement, label="coordinator")
    [result] = run_group(ctx, [coordinator], attempt=attempt)
    # The participants' machines ran as long as the server did.
    for q in placement.participants:
        bill(ctx, replace(coordinator, placement=_at(placement, q.site)))
    shutil.rmtree(workdir / "sites", ignore_errors=True)
    return result, request.outputs


def _at(placement: Placement, site: str) -> Placement:
    """The placement of the step's machine at ``site`` (the coordinator's own, or a participant's)."""
    if site == placement.site:
        return replace(placement, participants=())
    [q] = [q for q in placement.participants if q.site == site]
    return replace(
        placement,
        site=q.site,
        provider=q.provider,
        region=q.region,
        offering=q.offering,
        pricing=q.pricing,
        price_per_hour_usd=q.price_per_hour_usd,
        cost_usd=q.cost_usd,
        participants=(),
    )


def _combined(results: list[StepResult], members: list[Member]) -> StepResult:
    """Rank 0's result when every rank succeeded; else the failure that came first, naming its rank."""
    failed = [(m, r) for m, r in zip(members, results, strict=True) if not r.ok]
    if not failed:
        return results[0]
    causes = [(m, r) for m, r in failed if r.failure != "cancelled"] or failed
    member, result = causes[0]
    others = ", ".join(f"{m.label} at {m.placement.site}" for m, _ in failed if m is not member)
    error = f"{member.label} at {member.placement.site}: {result.error or f'exit code {result.exit_code}'}"
    if others:
        error += f" (then stopped: {others})"
    return replace(result, error=error)


def _record_exchange(ctx: RunContext, step: str, coordinator: str, metrics: Mapping[str, Any]) -> None:
    """Model updates and gradients the step reports per site, recorded as transfers both ways."""
    exchanged = metrics.get("exchange_bytes")
    if not isinstance(exchanged, Mapping):
        return
    for site, counts in exchanged.items():
        if site == coordinator or site not in ctx.platform.sites or not isinstance(counts, Mapping):
            continue
        sent, received = int(counts.get("sent", 0)), int(counts.get("received", 0))
        if sent:
            ctx.data.record_exchange(step, site, coordinator, sent)
        if received:
            ctx.data.record_exchange(step, coordinator, site, received)
