"""A run's datasets: found in their site's store, or made there by the dataset's ``make:`` function.

A dataset is never downloaded from anywhere: real pipelines point at data a site already holds, and
demos and tests make theirs in place. A made dataset is remade only when its recipe (the function's
source and its params) changes or its site lost the bytes.
"""

from __future__ import annotations

from decimal import Decimal

from stratus.config import DatasetSpec
from stratus.errors import ExecutorError, RunError, StorageError
from stratus.executors import StepRequest
from stratus.planner import Placement
from stratus.runner.cache import code_version, module_file
from stratus.runner.context import RunContext
from stratus.runner.events import RunEvent
from stratus.runner.execution import run_request

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
    error = ""
    for attempt in range(1, MAKE_ATTEMPTS + 1):
        workdir = ctx.workdir(ref, attempt)
        attempt_id = ctx.repo.start_attempt(
            ctx.run_id,
            ref,
            attempt=attempt,
            site=spec.site,
            offering="make",
            pricing="on-demand",
            cache_key="",
            log_path=str(workdir / "step.log"),
        )
        ctx.emit(RunEvent("step", f"{spec.make}", step=ref, state="making", site=spec.site, attempt=attempt))
        request = StepRequest(
            run_id=ctx.run_id,
            step=ref,
            entrypoint=spec.make,
            inputs={},
            outputs={name: workdir / "outputs" / name},
            workdir=workdir,
            python_path=[ctx.pipeline_dir],
            params=spec.params,
        )
        try:
            result = run_request(ctx, request, placement, preempt=False, attempt=attempt)
            if result.ok:
                sha = ctx.data.publish(
                    request.outputs[name],
                    [spec.site, *spec.replicas],
                    artifact=ref,
                    step=None,
                    residency=ctx.residency.get(ref, frozenset()),
                )
                ctx.repo.succeed_attempt(
                    attempt_id,
                    ctx.run_id,
                    duration_s=result.duration_s,
                    peak_memory_bytes=result.peak_memory_bytes,
                    metrics=result.metrics,
                    outputs={name: sha},
                    refs={},
                )
                ctx.emit(
                    RunEvent("step", f"made by {spec.make}", step=ref, state="succeeded", site=spec.site)
                )
                return sha
            error = f"{result.error} (log: {result.log_path})"
        except (ExecutorError, StorageError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        ctx.repo.fail_attempt(attempt_id, "failed", error)
        ctx.emit(RunEvent("step", error, step=ref, state="failed", site=spec.site, attempt=attempt))
    raise RunError(f"making dataset {name!r} with {spec.make} failed {MAKE_ATTEMPTS} times: {error}")
