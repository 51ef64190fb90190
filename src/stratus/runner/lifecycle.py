"""The life of one attempt, the same for a pipeline step and for making a dataset.

Recorded as running before anything starts; then the work (stage, run, publish) that the caller gives;
then recorded as succeeded, its outputs named in the run in the same transaction, or as failed, whatever
was raised. The order is what makes ``kill -9`` safe: a run killed anywhere in between finds the attempt
running on ``--resume`` and simply does it again. Each ending is told to whoever watches.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from stratus.errors import ExecutorError, PolicyError, RegistryError, ResidencyError, StorageError
from stratus.executors import StepResult
from stratus.failures import ErrorClass, classify_exception
from stratus.planner import Placement
from stratus.runner.context import RunContext
from stratus.runner.events import RunEvent, StepState
from stratus.state import StepStatus

__all__ = ["Attempt", "Outcome", "OutcomeKind", "Published", "run_attempt"]

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
    outputs: Mapping[str, str] = field(default_factory=dict)  # succeeded: output name → sha256


@dataclass(frozen=True)
class Published:
    """What work that succeeded leaves: its result, its outputs in the stores (name → sha256), the names
    they take in the run, every site a multi-site attempt ran at, and what to tell the user."""

    result: StepResult
    outputs: Mapping[str, str]
    refs: Mapping[str, str]
    message: str
    sites: Sequence[str] = ()


@dataclass(frozen=True)
class Attempt:
    """One attempt recorded as running: where its work happens, and how it tells its progress."""

    ctx: RunContext
    step: str  # a pipeline step, or ``dataset:NAME`` for making a dataset
    site: str
    number: int
    workdir: Path
    id: int

    def state(self, value: StepState, message: str = "") -> None:
        """Tell whoever watches that the attempt is now ``value``."""
        self.ctx.emit(
            RunEvent("step", message, step=self.step, state=value, site=self.site, attempt=self.number)
        )


#: The work of an attempt: a result that is not ok is the step's own failure; exceptions are classified.
Work = Callable[[Attempt], StepResult | Published]


def run_attempt(
    ctx: RunContext, step: str, placement: Placement, number: int, cache_key: str, work: Work
) -> Outcome:
    """Record attempt ``number`` of ``step`` at ``placement`` as running, do ``work``, record how it ended.

    Never raises for the work's own failure: every exception ends the attempt, classified.
    """
    workdir = ctx.workdir(step, number)
    attempt = Attempt(
        ctx,
        step,
        placement.site,
        number,
        workdir,
        ctx.repo.start_attempt(
            ctx.run_id,
            step,
            attempt=number,
            site=placement.site,
            offering=placement.offering,
            pricing=placement.pricing,
            cache_key=cache_key,
            log_path=str(workdir / "step.log"),
        ),
    )
    try:
        done = work(attempt)
    except (ResidencyError, PolicyError) as exc:
        return _fail(attempt, "refused", f"{type(exc).__name__}: {exc}", "user")
    except RegistryError as exc:  # a model that cannot be registered, or a registry that cannot be reached
        return _fail(attempt, "failed", f"RegistryError: {exc}", classify_exception(exc))
    except ExecutorError as exc:
        return _fail(attempt, "site-down", str(exc), "infrastructure")
    except StorageError as exc:
        # The attempt's own store failing is the site failing; another site's store failing is an error
        # here (a replica that cannot be written fails the step, naming that site and URL).
        whose: OutcomeKind = "site-down" if exc.site == attempt.site else "failed"
        return _fail(attempt, whose, f"StorageError: {exc}", "infrastructure")
    except Exception as exc:  # an OSError from a path, or a bug of ours: the attempt must not stay running
        return _fail(attempt, "failed", f"{type(exc).__name__}: {exc}", classify_exception(exc))
    if isinstance(done, StepResult):
        kind: OutcomeKind = "preempted" if done.preempted else "failed"
        if done.failure == "cancelled":
            kind = "cancelled"
        why = done.error_class or "infrastructure"
        return _fail(attempt, kind, f"{done.error} (log: {done.log_path})", why, done)
    result = done.result
    ctx.repo.succeed_attempt(
        attempt.id,
        ctx.run_id,
        duration_s=result.duration_s,
        peak_memory_bytes=result.peak_memory_bytes,
        metrics=result.metrics,
        outputs=done.outputs,
        refs=done.refs,
        sites=done.sites,
    )
    for folder in ("inputs", "outputs"):  # the bytes now live in the stores; keep only the log
        shutil.rmtree(workdir / folder, ignore_errors=True)
    attempt.state("succeeded", done.message)
    return Outcome(step, attempt.site, number, "succeeded", metrics=result.metrics, outputs=done.outputs)


def _fail(
    attempt: Attempt,
    kind: OutcomeKind,
    error: str,
    error_class: ErrorClass,
    result: StepResult | None = None,
) -> Outcome:
    status: StepStatus = "failed"
    if kind == "preempted" or kind == "cancelled":
        status = kind
    attempt.ctx.repo.fail_attempt(
        attempt.id,
        status,
        error,
        duration_s=result.duration_s if result else None,
        peak_memory_bytes=result.peak_memory_bytes if result else None,
        exit_code=result.exit_code if result else None,
    )
    log = attempt.workdir / "step.log"
    return Outcome(
        attempt.step, attempt.site, attempt.number, kind, error, error_class=error_class, log_path=log
    )
