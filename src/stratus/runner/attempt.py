"""One attempt of one step: stage inputs at its site, run it, publish and replicate its outputs, record.

The order is what makes ``kill -9`` safe: the attempt is recorded as running before anything starts, its
outputs are verified on every replica before the attempt is marked succeeded, and that mark and the
naming of its outputs are one transaction. A run killed anywhere in between simply retries the attempt.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from stratus.errors import ExecutorError, StorageError
from stratus.executors import Handle, StepRequest, StepResult
from stratus.planner import Placement
from stratus.runner.context import RunContext
from stratus.runner.events import RunEvent, StepState
from stratus.state import StepStatus, utcnow

__all__ = ["Outcome", "OutcomeKind", "execute_step", "watch"]

OutcomeKind = Literal["succeeded", "failed", "preempted", "site-down", "cancelled"]
_POLL_S = 0.25


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended. ``site-down`` and ``preempted`` move the step elsewhere; ``failed`` retries."""

    step: str
    site: str
    attempt: int
    kind: OutcomeKind
    error: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)


def execute_step(
    ctx: RunContext,
    name: str,
    placement: Placement,
    attempt: int,
    cache_key: str,
    inputs: Mapping[str, str],
    *,
    preempt: bool = False,
) -> Outcome:
    """Run attempt ``attempt`` of step ``name`` at its placement; never raises for a step's own failure."""
    step = ctx.pipeline.steps[name]
    site = placement.site
    workdir = ctx.workdir(name, attempt)
    attempt_id = ctx.repo.start_attempt(
        ctx.run_id,
        name,
        attempt=attempt,
        site=site,
        offering=placement.offering,
        pricing=placement.pricing,
        cache_key=cache_key,
        log_path=str(workdir / "step.log"),
    )

    def state(value: StepState, message: str = "") -> None:
        ctx.emit(RunEvent("step", message, step=name, state=value, site=site, attempt=attempt))

    def fail(kind: OutcomeKind, error: str, result: StepResult | None = None) -> Outcome:
        status: StepStatus = "failed"
        if kind == "preempted" or kind == "cancelled":
            status = kind
        ctx.repo.fail_attempt(
            attempt_id,
            status,
            error,
            duration_s=result.duration_s if result else None,
            peak_memory_bytes=result.peak_memory_bytes if result else None,
            exit_code=result.exit_code if result else None,
        )
        return Outcome(name, site, attempt, kind, error)

    try:
        state("staging", f"fetching {len(inputs)} input(s) to {site}")
        local_inputs = {}
        for ref, sha in inputs.items():
            residency = ctx.residency.get(ref, frozenset())
            ctx.data.ensure_at(
                sha, site, artifact=ref, step=name, reason=f"input of {name}", residency=residency
            )
            local_inputs[ref] = ctx.data.fetch(sha, site, workdir / "inputs" / ref.replace(":", "-"))
        request = StepRequest(
            run_id=ctx.run_id,
            step=name,
            entrypoint=step.run,
            inputs=local_inputs,
            outputs={out: workdir / "outputs" / out for out in step.outputs},
            workdir=workdir,
            env={"STRATUS_RUN_ID": ctx.run_id, "STRATUS_STEP": name, "STRATUS_SITE": site},
            resources=step.resources,
            python_path=[ctx.pipeline_dir],
            params=step.params,
        )
        result = run_request(ctx, request, placement, preempt=preempt, attempt=attempt)
        if not result.ok:
            kind: OutcomeKind = "preempted" if result.preempted else "failed"
            if result.failure == "cancelled":
                kind = "cancelled"
            return fail(kind, f"{result.error} (log: {result.log_path})", result)
        targets = ", ".join(dict.fromkeys([site, *step.replicate]))
        state("publishing", f"writing {len(step.outputs)} output(s) to {targets}")
        outputs = {
            out: ctx.data.publish(
                path,
                [site, *step.replicate],
                artifact=f"{name}.{out}",
                step=name,
                residency=ctx.residency.get(f"{name}.{out}", frozenset()),
            )
            for out, path in request.outputs.items()
        }
    except ExecutorError as exc:
        return fail("site-down", str(exc))
    except StorageError as exc:
        # The step's own store failing is the site failing; another site's store failing is an error
        # here (a replica that cannot be written fails the step, naming that site and URL).
        return fail("site-down" if exc.site == site else "failed", f"StorageError: {exc}")
    ctx.repo.succeed_attempt(
        attempt_id,
        ctx.run_id,
        duration_s=result.duration_s,
        peak_memory_bytes=result.peak_memory_bytes,
        metrics=result.metrics,
        outputs=outputs,
        refs={f"{name}.{out}": sha for out, sha in outputs.items()},
    )
    for folder in ("inputs", "outputs"):  # the bytes now live in the stores; keep only the log
        shutil.rmtree(workdir / folder, ignore_errors=True)
    state("succeeded", _metrics_words(result.metrics))
    return Outcome(name, site, attempt, "succeeded", metrics=result.metrics)


def run_request(
    ctx: RunContext, request: StepRequest, placement: Placement, *, preempt: bool, attempt: int
) -> StepResult:
    """Submit to the site's executor, follow the log, bill the compute whatever the outcome."""
    executor = ctx.sites.executors[placement.site]
    started = utcnow()
    handle = executor.submit(request)
    ctx.emit(
        RunEvent(
            "step",
            f"on {placement.offering} ({placement.pricing})",
            step=request.step,
            state="running",
            site=placement.site,
            attempt=attempt,
        )
    )
    if preempt:
        handle.preempt()
    result = watch(ctx, handle, request.step, placement.site, attempt)
    if request.step in ctx.pipeline.steps:  # making a demo dataset is setup, not a billed step
        pricing = ctx.placer.pricing(placement)
        ctx.biller.compute(
            step=request.step,
            placement=placement,
            executor=executor,
            resources=request.resources,
            list_price_per_hour_usd=pricing.list_price_per_hour_usd,
            accelerator=pricing.accelerator,
            seconds=result.duration_s,
            started=started,
            ended=utcnow(),
        )
    return result


def watch(ctx: RunContext, handle: Handle, step: str, site: str, attempt: int) -> StepResult:
    """Wait for the step, emitting its new log lines; cancel it if the run is stopping."""
    offset = 0
    cancelled = False
    while True:
        result = handle.wait(_POLL_S)
        offset = _new_lines(ctx, handle.log_path, offset, step, site, attempt)
        if result is not None:
            return result
        if ctx.stop.is_set() and not cancelled:
            handle.cancel()
            cancelled = True


def _new_lines(ctx: RunContext, log: Path, offset: int, step: str, site: str, attempt: int) -> int:
    try:
        with log.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
    except OSError:
        return offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return offset
    for line in chunk[: end + 1].decode("utf-8", errors="replace").splitlines():
        if line.strip():
            ctx.emit(RunEvent("log", line, step=step, site=site, attempt=attempt))
    return offset + end + 1


def _metrics_words(metrics: Mapping[str, Any]) -> str:
    shown = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()]
    return ", ".join(shown[:6])
