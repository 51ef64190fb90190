"""A run's datasets: found in their site's store, or made there by the dataset's ``make:`` function.

A dataset is never downloaded from anywhere: real pipelines point at data a site already holds, and
demos and tests make theirs in place. A made dataset is remade only when its recipe (the function's
source and its params) changes or its site lost the bytes.
"""

from __future__ import annotations

from decimal import Decimal

from stratus.config import DatasetSpec
from stratus.errors import RunError
from stratus.executors import StepResult
from stratus.planner import Placement
from stratus.runner.cache import code_version, module_file
from stratus.runner.context import RunContext
from stratus.runner.events import RunEvent
from stratus.runner.execution import run_request
from stratus.runner.lifecycle import Attempt, Published, run_attempt
from stratus.runner.staging import step_request

__all__ = ["bind_datasets", "make_keys"]

MAKE_ATTEMPTS = 2


def make_keys(ctx: RunContext) -> dict[str, str]:
    """The recipe version of every dataset with ``make:`` (a missing module is a config error, early)."""
    keys = {}
    for name, spec in ctx.pipeline.datasets.items():
        if spec.make:
            source = module_file(spec.make, [ctx.pipeline_dir], field=f"datasets.{name}.make")
            keys[name] = code_version(spec.make, source, spec.params)
    return keys


def bind_datasets(ctx: RunContext, keys: dict[str, str]) -> None:
    """Name every dataset's bytes in this run, making the ones that are missing or out of date."""
    for name, spec in ctx.pipeline.datasets.items():
        ref = f"dataset:{name}"
        if ctx.repo.resolve(ctx.run_id, ref) is not None:
            continue  # resumed: the run already fixed which bytes this dataset is
        ctx.repo.name(ctx.run_id, ref, _current(ctx, name, spec, keys.get(name)))


def _current(ctx: RunContext, name: str, spec: DatasetSpec, make_key: str | None) -> str:
    ref = f"dataset:{name}"
    residency = ctx.residency.get(ref, frozenset())
    store = ctx.sites.stores[spec.site]
    row = ctx.repo.dataset(ctx.pipeline.name, name)
    fresh = row is not None and row.site == spec.site and (spec.make is None or row.make_key == make_key)
    if row is not None and fresh and _still_held(ctx, row.sha256, spec.site):
        ctx.repo.set_replica(row.sha256, spec.site, "verified")
        for replica in spec.replicas:
            ctx.data.ensure_at(
                row.sha256, replica, artifact=ref, step=None, reason="dataset replica", residency=residency
            )
        ctx.emit(RunEvent("step", "found in the site's store", step=ref, state="cached", site=spec.site))
        return row.sha256
    if spec.make is None:
        raise RunError(
            f"dataset {name!r} is missing or corrupt in site {spec.site}'s store ({store.url}) and declares "
            "no `make:`; "
            f"put the data there, or add `make: module:function` to datasets.{name}"
        )
    sha = _make(ctx, name, spec)
    ctx.repo.set_dataset(ctx.pipeline.name, name, sha256=sha, site=spec.site, make_key=make_key)
    return sha


def _still_held(ctx: RunContext, sha256: str, site: str) -> bool:
    """A replica the manifest calls verified that is still there, or bytes there that re-hash to ``sha256``.

    Presence alone never turns a replica that ``storage verify`` found corrupt back into a verified one.
    """
    store = ctx.sites.stores[site]
    if ctx.repo.replicas(sha256).get(site) == "verified":
        return store.has(sha256)
    return store.holds(sha256)


def _make(ctx: RunContext, name: str, spec: DatasetSpec) -> str:
    """Run the dataset's ``make:`` at its site (an attempt of step ``dataset:NAME``, not billed), up to
    :data:`MAKE_ATTEMPTS` times for infrastructure failures and once when its own code raised (as for a
    step); the sha256 of what it made, published at the site and its replicas."""
    ref = f"dataset:{name}"
    assert spec.make is not None
    site = ctx.platform.sites[spec.site]
    placement = Placement(
        step=ref,
        site=spec.site,
        provider=site.provider,
        region=site.region,
        offering="make",
        pricing="on-demand",
        price_per_hour_usd=Decimal(0),
        hours=0.0,
        cost_usd=Decimal(0),
    )

    def work(run: Attempt) -> StepResult | Published:
        run.state("making", f"{spec.make}")
        request = step_request(ctx, ref, spec.site, run.workdir, {})
        result = run_request(ctx, request, placement, preempt=False, attempt=run.number)
        if not result.ok:
            return result
        sha = ctx.data.publish(
            request.outputs[name],
            [spec.site, *spec.replicas],
            artifact=ref,
            step=None,
            residency=ctx.residency.get(ref, frozenset()),
        )
        return Published(result, {name: sha}, refs={}, message=f"made by {spec.make}")

    error = ""
    for attempt in range(1, MAKE_ATTEMPTS + 1):
        outcome = run_attempt(ctx, ref, placement, attempt, "", work)
        if outcome.kind == "succeeded":
            return outcome.outputs[name]
        error = outcome.error or outcome.kind
        ctx.emit(RunEvent("step", error, step=ref, state="failed", site=spec.site, attempt=attempt))
        if outcome.kind == "refused":  # residency or policy: the same make would be refused again
            raise RunError(f"making dataset {name!r} with {spec.make} was refused: {error}")
        if outcome.error_class == "user":  # the make function's own error: a rerun would raise it again
            raise RunError(
                f"making dataset {name!r} with {spec.make} failed in its own code, so it was not retried: "
                f"{error}"
            )
    raise RunError(f"making dataset {name!r} with {spec.make} failed {MAKE_ATTEMPTS} times: {error}")
