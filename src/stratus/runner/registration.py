"""Registering a step's ONNX output in the model registry, with the lineage that makes it accountable.

The lineage says which run and step made the model; on which sites (its own and every upstream step's);
from exactly which input bytes (their SHA-256 in the sites' content-addressed stores); with which
metrics; and what the run had cost so far.

The model's bytes are already a content-addressed run artifact, replicated as the step's ``replicate``
says; the platform's ``registry.artifacts`` sites are made to hold them too. The version records the
sites holding verified bytes, so losing the registry's own file, or one site, loses no model.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from stratus.config import step_dependencies
from stratus.errors import ResidencyError
from stratus.ledger import report
from stratus.registry import Lineage, Registry
from stratus.runner.context import RunContext
from stratus.runner.residency import manifest_bound
from stratus.state import DONE
from stratus.storage import allows, strictest

__all__ = ["register_output"]


def register_output(
    ctx: RunContext,
    step: str,
    sites: list[str],
    inputs: Mapping[str, str],
    published: Mapping[str, str],
    outputs: Mapping[str, Path],
    metrics: Mapping[str, Any],
) -> str:
    """Register the step's declared output; returns what to tell the user (``fraud v3 (champion)``).

    ``published`` maps each output to its hash in the manifest: the registered model carries the
    residency of that artifact (the strictest bound of its bytes), and the registry refuses it when its
    own store's jurisdiction does not satisfy that bound.
    """
    spec = ctx.pipeline.steps[step].registration
    assert spec is not None
    output = spec.output or next(iter(outputs))
    residency = strictest(
        ctx.residency.get(f"{step}.{output}", frozenset()), manifest_bound(ctx.repo, published[output])
    )
    lineage = Lineage(
        run_id=ctx.run_id,
        step=step,
        sites=tuple(dict.fromkeys([*sites, *_upstream_sites(ctx, step)])),
        inputs=dict(inputs),
        metrics={
            k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
        },
        cost_usd=_run_cost(ctx),
        pipeline=ctx.pipeline.name,
        tags=dict(ctx.pipeline.tags),
        residency=tuple(residency),
    )
    spec_registry = ctx.platform.registry
    registry = Registry.open(
        spec_registry.tracking_uri if spec_registry else None,
        ctx.runs_dir.parent,
        jurisdiction=spec_registry.jurisdiction if spec_registry else None,
    )
    path = outputs[output]
    if path.suffix != ".onnx":  # outputs are named by the pipeline, the registry wants an .onnx file
        named = path.parent / ".register" / f"{spec.model}.onnx"
        named.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, named)
        path = named
    registry.check_residency(spec.model, residency)  # before any copy: nothing moves for a refused model
    sha = published[output]  # the bytes of ``path``: the output as published, renamed at most
    holders = _replicate_to_registry_sites(ctx, step, output, sha, residency)
    version = registry.register(spec.model, path, lineage, spec.aliases, holders=holders)
    aliases = f" ({', '.join(spec.aliases)})" if spec.aliases else ""
    return f"registered {spec.model} v{version.version}{aliases}; bytes at {', '.join(holders)}"


def _replicate_to_registry_sites(
    ctx: RunContext, step: str, output: str, sha: str, residency: frozenset[str]
) -> list[str]:
    """Make ``registry.artifacts`` hold the model's bytes; the sites holding verified bytes after that.

    Every listed site is checked against the model's residency before any byte moves. A site that cannot
    be written now is recorded pending (``stratus storage repair`` completes it) and noted: the model
    is safe as long as one verified holder is left, and the run's own replicas are holders already.
    """
    spec = ctx.platform.registry
    wanted = list(dict.fromkeys(spec.artifacts)) if spec is not None else []
    for site in wanted:
        where = ctx.sites.stores[site].jurisdiction
        if not allows(where, residency):
            bound = "/".join(sorted(residency))
            raise ResidencyError(
                f"refusing to keep model bytes of {step}.{output} at site {site} (registry.artifacts in "
                f"the platform file): it is {bound}-resident and {site} is in "
                f"{where or 'no declared jurisdiction'}; list {bound} sites only"
            )
    if wanted:
        ctx.data.ensure_replicas(
            sha,
            wanted,
            min_replicas=0,
            artifact=f"{step}.{output}",
            step=step,
            residency=residency,
        )
    return sorted(site for site, status in ctx.repo.replicas(sha).items() if status == "verified")


def _run_cost(ctx: RunContext) -> Decimal:
    """What the run has been charged so far (compute and transfers; storage is charged at its end)."""
    return sum(
        (row.actual_usd for row in report(ctx.repo.db, by=("site",), run_id=ctx.run_id).rows), Decimal(0)
    )


def _upstream_sites(ctx: RunContext, step: str) -> list[str]:
    """Every site that ran a step this one depends on, transitively: where the model was really made.

    A multi-site ancestor counts every machine it ran on (its attempt's ``sites``).
    """
    deps = step_dependencies({name: spec.inputs for name, spec in ctx.pipeline.steps.items()})
    ancestors: set[str] = set()
    pending = list(deps[step])
    while pending:
        name = pending.pop()
        if name not in ancestors:
            ancestors.add(name)
            pending.extend(deps[name])
    sites: list[str] = []
    for row in ctx.repo.attempts(ctx.run_id):
        if row.step in ancestors and row.status in DONE:
            sites.append(row.site)
            sites.extend(s for s in row.sites if s in ctx.platform.sites)
    return sites
