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

from stratus.errors import ExecutorError, PolicyError, RegistryError, ResidencyError, StorageError
from stratus.executors import StepResult
from stratus.failures import ErrorClass, classify_exception
from stratus.planner import Placement
from stratus.planner.residency import step_residency
from stratus.runner.context import RunContext
from stratus.runner.events import RunEvent, StepState, metrics_words
from stratus.runner.execution import run_request
from stratus.runner.multisite import participant_sites, run_multi_site
from stratus.runner.registration import register_output
from stratus.runner.residency import resident_inputs
from stratus.runner.staging import stage_inputs, step_request
from stratus.state import StepStatus

__all__ = ["Outcome", "OutcomeKind", "execute_step"]

OutcomeKind = Literal["succeeded", "failed", "preempted", "site-down", "cancelled", "refused"]


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended. ``site-down`` and ``preempted`` move the step elsewhere; ``failed`` retries
    when ``error_class`` is ``infrastructure`` (or the step opted in with ``retry_on_error``).

    ``refused`` is a residency or policy refusal: the same step would be refused again, so it is never
    retried.
    """

    step: str
    site: str
    attempt: int
    kind: OutcomeKind
    error: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    error_class: ErrorClass | None = None  # set for every kind but succeeded
    log_path: Path | None = None


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

    def fail(
        kind: OutcomeKind, error: str, error_class: ErrorClass, result: StepResult | None = None
    ) -> Outcome:
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
        return Outcome(
            name, site, attempt, kind, error, error_class=error_class, log_path=workdir / "step.log"
        )

    try:
        # Where the step's machines may be: what it reads binds them (a federated step's data stays put).
        bound = frozenset() if step.kind == "federated" else step_residency(step.inputs, ctx.residency)
        ctx.policy.check_start(ctx.pipeline, ctx.run_id, placement, bound, ctx.placer.offering)
        if step.kind == "single":
            state("staging", f"fetching {len(inputs)} input(s) to {site}")
            local_inputs = stage_inputs(ctx, name, site, inputs, workdir / "inputs")
            request = step_request(ctx, name, site, workdir, local_inputs)
            result = run_request(ctx, request, placement, preempt=preempt, attempt=attempt)
            produced = request.outputs
        else:
            sites = ", ".join(participant_sites(ctx, name, placement))
            state("staging", f"{step.kind} over {sites}; coordinator {site}")
            result, produced = run_multi_site(ctx, name, placement, attempt, inputs, workdir)
        if not result.ok:
            kind: OutcomeKind = "preempted" if result.preempted else "failed"
            if result.failure == "cancelled":
                kind = "cancelled"
            why = result.error_class or "infrastructure"
            return fail(kind, f"{result.error} (log: {result.log_path})", why, result)
        targets = ", ".join(dict.fromkeys([site, *step.replicate.sites]))
        state("publishing", f"writing {len(step.outputs)} output(s) to {targets}")
        forbidden = resident_inputs(ctx, name, inputs)
        outputs = {
            out: ctx.data.publish(
                path,
                [site, *step.replicate.sites],
                artifact=f"{name}.{out}",
                step=name,
                residency=ctx.residency.get(f"{name}.{out}", frozenset()),
                min_replicas=step.replicate.min,
                resident_inputs=forbidden,
            )
            for out, path in produced.items()
        }
        if step.registration is not None:
            where = list(dict.fromkeys([site, *participant_sites(ctx, name, placement)]))
            state("publishing", register_output(ctx, name, where, inputs, outputs, produced, result.metrics))
    except (ResidencyError, PolicyError) as exc:
        return fail("refused", f"{type(exc).__name__}: {exc}", "user")
    except RegistryError as exc:  # a model that cannot be registered, or a registry that cannot be reached
        return fail("failed", f"RegistryError: {exc}", classify_exception(exc))
    except ExecutorError as exc:
        return fail("site-down", str(exc), "infrastructure")
    except StorageError as exc:
        # The step's own store failing is the site failing; another site's store failing is an error
        # here (a replica that cannot be written fails the step, naming that site and URL).
        whose: OutcomeKind = "site-down" if exc.site == site else "failed"
        return fail(whose, f"StorageError: {exc}", "infrastructure")
    except Exception as exc:  # an OSError from a path, or a bug of ours: the attempt must not stay running
        return fail("failed", f"{type(exc).__name__}: {exc}", classify_exception(exc))
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
    ran = f"ran {result.duration_s:.1f} s"
    state("succeeded", ", ".join(w for w in (ran, metrics_words(result.metrics, limit=6)) if w))
    return Outcome(name, site, attempt, "succeeded", metrics=result.metrics)
