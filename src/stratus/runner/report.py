"""The outcome of a run, read back from the state database so a resumed run reports the whole story."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from stratus.failures import ErrorClass
from stratus.ledger import report as ledger_report
from stratus.planner import SizeEstimate
from stratus.runner.incidents import Incidents, Replan, SiteDown, StepFailure
from stratus.state import DONE, Repository, StepRunRow

__all__ = ["LOG_TAIL_LINES", "ArtifactReport", "RunReport", "StepReport", "build_report", "log_tail"]

#: How many of a failed step's last log lines the run's output shows.
LOG_TAIL_LINES = 20
_TAIL_BYTES = 64 * 1024  # enough for 20 long lines; a multi-GB log is never read whole


@dataclass(frozen=True)
class StepReport:
    """Where a step ran, how it ended, after how many attempts, and what it measured."""

    step: str
    site: str | None
    offering: str | None
    status: str
    attempts: int
    duration_s: float
    metrics: Mapping[str, Any] = field(default_factory=dict)
    cached_from: str | None = None
    error_class: ErrorClass | None = None  # whose failure the last attempt's was, when the step failed
    error: str | None = None
    log_path: str | None = None  # the last attempt's log
    log_tail: tuple[str, ...] = ()  # its last lines, when the step failed


@dataclass(frozen=True)
class ArtifactReport:
    """One artifact the run produced or read, and the sites holding a verified copy."""

    name: str
    sha256: str
    size_bytes: int
    replicas: tuple[str, ...]


@dataclass(frozen=True)
class RunReport:
    """The run's result; ``to_json`` is the documented ``stratus run --json`` object."""

    run_id: str
    status: str
    steps: tuple[StepReport, ...]
    artifacts: tuple[ArtifactReport, ...]
    cost_usd: Decimal
    notes: tuple[str, ...] = ()
    error: str | None = None
    waited_for: str | None = None  # the run of the same pipeline this one waited for, if any
    sites_down: tuple[SiteDown, ...] = ()
    replans: tuple[Replan, ...] = ()
    # Step outputs whose declared size_gb is more than 10x off what this run measured.
    size_estimates: tuple[SizeEstimate, ...] = ()

    @property
    def succeeded(self) -> bool:
        """Every step succeeded or was reused from the cache."""
        return self.status == "succeeded"

    @property
    def cached_steps(self) -> tuple[str, ...]:
        """Steps whose outputs were reused from an earlier run."""
        return tuple(s.step for s in self.steps if s.status == "cached")

    def to_json(self) -> dict[str, Any]:
        """``{"run_id", "status", "steps": [...], "artifacts": [...], "cost_usd", "waited_for", "sites_down",
        "replans", "size_estimates"}``: each step with its metrics, and when it failed, whose failure it
        was (``error_class``: ``user`` or ``infrastructure``), the error and its log's last lines.
        ``waited_for`` is the id of the run of the same pipeline this one waited for (None when it did not
        wait); its results were reused. ``size_estimates``: outputs declared more than 10x off their
        measured size.
        """
        return {
            "run_id": self.run_id,
            "status": self.status,
            "steps": [
                {
                    "step": s.step,
                    "site": s.site,
                    "offering": s.offering,
                    "status": s.status,
                    "attempts": s.attempts,
                    "duration_s": round(s.duration_s, 3),
                    "metrics": dict(s.metrics),
                    "cached_from": s.cached_from,
                    "error_class": s.error_class,
                    "error": s.error,
                    "log_path": s.log_path,
                    "log_tail": list(s.log_tail),
                }
                for s in self.steps
            ],
            "artifacts": [
                {"name": a.name, "sha256": a.sha256, "size_bytes": a.size_bytes, "replicas": list(a.replicas)}
                for a in self.artifacts
            ],
            "cost_usd": float(self.cost_usd),
            "waited_for": self.waited_for,
            "sites_down": [
                {"site": d.site, "reason": d.reason, "at": d.at.isoformat()} for d in self.sites_down
            ],
            "replans": [
                {
                    "cause": r.cause,
                    "at": r.at.isoformat(),
                    "moved": [{"step": m.step, "from": m.from_site, "to": m.to_site} for m in r.moved],
                }
                for r in self.replans
            ],
            "size_estimates": [e.to_json() for e in self.size_estimates],
        }


def build_report(
    repo: Repository,
    run_id: str,
    steps: Sequence[str],
    notes: Sequence[str] = (),
    error: str | None = None,
    *,
    incidents: Incidents | None = None,
    size_estimates: Sequence[SizeEstimate] = (),
) -> RunReport:
    """Assemble the report of ``run_id`` from the manifest and the ledger (the single source of cost).

    ``incidents`` adds what only this session saw: sites down, re-plans and each failure's class;
    ``size_estimates`` the outputs whose declared size was far from the measured one.
    """
    incidents = incidents or Incidents()
    row = repo.run(run_id)
    attempts: dict[str, list[StepRunRow]] = {}
    for attempt in repo.attempts(run_id):
        attempts.setdefault(attempt.step, []).append(attempt)
    step_reports = tuple(
        _step_report(name, attempts.get(name, []), incidents.failures.get(name)) for name in steps
    )
    artifacts = []
    for ref, sha in sorted(repo.names(run_id).items(), key=lambda item: _ref_order(item[0], steps)):
        artifact = repo.artifact(sha)
        verified = tuple(site for site, status in sorted(repo.replicas(sha).items()) if status == "verified")
        artifacts.append(ArtifactReport(ref, sha, artifact.size_bytes if artifact else 0, verified))
    cost = ledger_report(repo.db, by=[], run_id=run_id).totals.actual_usd
    return RunReport(
        run_id=run_id,
        status=row.status if row else "failed",
        steps=step_reports,
        artifacts=tuple(artifacts),
        cost_usd=cost,
        notes=tuple(notes),
        error=error if error is not None else (row.error if row else None),
        sites_down=tuple(incidents.sites_down),
        replans=tuple(incidents.replans),
        size_estimates=tuple(size_estimates),
    )


def _step_report(name: str, attempts: list[StepRunRow], failure: StepFailure | None) -> StepReport:
    if not attempts:
        return StepReport(name, None, None, "pending", 0, 0.0)
    done = [a for a in attempts if a.status in DONE]
    last = done[-1] if done else attempts[-1]
    tries = sum(1 for a in attempts if a.status != "cached")
    failed = last.status not in DONE and last.status != "running"
    return StepReport(
        step=name,
        site=last.site,
        offering=last.offering,
        status=last.status,
        attempts=tries,
        duration_s=last.duration_s or 0.0,
        metrics=last.metrics,
        cached_from=last.cached_from,
        error_class=failure.error_class if failed and failure else None,
        error=last.error if failed else None,
        log_path=last.log_path,
        log_tail=tuple(log_tail(Path(last.log_path))) if failed and last.log_path else (),
    )


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a step's log (read from the end: logs can be large); [] if unreadable."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _TAIL_BYTES))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def _ref_order(ref: str, steps: Sequence[str]) -> tuple[int, str]:
    if ref.startswith("dataset:"):
        return (-1, ref)
    producer = ref.split(".", 1)[0]
    return (steps.index(producer) if producer in steps else len(steps), ref)
