"""Runs as the dashboard shows them: read from the run manifest and the ledger, never written.

Every value here is plain data (frozen dataclasses with ``to_json``), so the web layer only renders and
the same values feed the pages and the JSON endpoint that the run page polls while a run goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from stratus.ledger import LedgerRow, report
from stratus.ledger.record import CATEGORY_STORAGE
from stratus.state import Database, Repository, RunRow, StepRunRow, TransferRow, utcnow

__all__ = [
    "AttemptView",
    "RunSummary",
    "StepView",
    "TransferView",
    "list_runs",
    "planned_sites",
    "run_summary",
    "step_attempts",
    "step_views",
    "transfer_views",
]


@dataclass(frozen=True)
class RunSummary:
    """One line of the runs list: what ran, how it ended, how long, planned against actual, where."""

    id: str
    pipeline: str
    status: str
    started: datetime
    finished: datetime | None
    duration_s: float
    planned_usd: Decimal
    actual_usd: Decimal
    sites: tuple[str, ...]
    error: str | None
    pipeline_file: str

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (money as strings: exact)."""
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "status": self.status,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "duration_s": round(self.duration_s, 3),
            "planned_usd": str(self.planned_usd),
            "actual_usd": str(self.actual_usd),
            "sites": list(self.sites),
            "error": self.error,
        }


@dataclass(frozen=True)
class AttemptView:
    """One attempt of a step: where, on what, how it ended, and its log (a path the runner wrote)."""

    attempt: int
    status: str
    site: str
    offering: str
    pricing: str
    started: datetime
    finished: datetime | None
    duration_s: float | None
    exit_code: int | None
    error: str | None
    cached_from: str | None
    log_path: str | None
    metrics: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepView:
    """A step of a run: its last attempt's state, the site the plan chose, and what it cost."""

    name: str
    status: str
    site: str | None
    planned_site: str | None
    offering: str | None
    attempts: int
    duration_s: float | None
    metrics: Mapping[str, Any]
    error: str | None
    planned_usd: Decimal
    actual_usd: Decimal

    def to_json(self) -> dict[str, Any]:
        """What the run page's poll reads."""
        return {
            "name": self.name,
            "status": self.status,
            "site": self.site,
            "planned_site": self.planned_site,
            "offering": self.offering,
            "attempts": self.attempts,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "metrics": dict(self.metrics),
            "error": self.error,
            "planned_usd": str(self.planned_usd),
            "actual_usd": str(self.actual_usd),
        }


@dataclass(frozen=True)
class TransferView:
    """One copy between sites, as the manifest recorded it."""

    artifact: str
    from_site: str
    to_site: str
    size_bytes: int
    reason: str
    step: str | None
    at: datetime

    @property
    def reader(self) -> str | None:
        """The step this copy fed (``input of a, b`` names the first reader), None for a replica."""
        if self.reason.startswith("input of "):
            return self.reason.removeprefix("input of ").split(",")[0].strip() or None
        return None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "artifact": self.artifact,
            "from": self.from_site,
            "to": self.to_site,
            "size_bytes": self.size_bytes,
            "reason": self.reason,
            "step": self.step,
            "at": self.at.isoformat(),
        }


def list_runs(db: Database) -> list[RunSummary]:
    """Every run, newest first, with its planned and actual cost from the ledger."""
    repo = Repository(db)
    costs = {row.group[0]: row for row in report(db, by=["run"], run_id=None).rows}
    sites = _sites_by_run(db)
    out = []
    for run in repo.runs():
        cost = costs.get(run.id)
        out.append(
            _summary(
                run,
                cost.planned_usd if cost else Decimal(0),
                cost.actual_usd if cost else Decimal(0),
                sites.get(run.id, ()),
            )
        )
    return out


def run_summary(db: Database, run_id: str) -> RunSummary | None:
    """One run's summary, or None when the database has no run with that id."""
    row = Repository(db).run(run_id)
    if row is None:
        return None
    totals = report(db, by=[], run_id=run_id).totals
    return _summary(row, totals.planned_usd, totals.actual_usd, _sites_by_run(db, run_id).get(run_id, ()))


def step_views(db: Database, run_id: str, order: Sequence[str] = ()) -> list[StepView]:
    """Each step of the run in ``order`` (the pipeline's), then any other step the manifest names.

    A step with no attempt yet is ``pending`` while the run goes on and ``not run`` once it has ended.
    Datasets are made (or found) by attempts of step ``dataset:NAME``; one with no attempt is left out.
    """
    run = Repository(db).run(run_id)
    attempts: dict[str, list[StepRunRow]] = {}
    for attempt in Repository(db).attempts(run_id):
        attempts.setdefault(attempt.step, []).append(attempt)
    planned = planned_sites(db, run_id)
    costs = {row.group[0]: row for row in report(db, by=["step"], run_id=run_id).rows}
    names = list(dict.fromkeys([*order, *planned, *attempts]))
    waiting = "pending" if run is not None and run.status == "running" else "not run"
    views = []
    for name in names:
        mine = attempts.get(name, [])
        if not mine and name.startswith("dataset:"):
            continue
        last = mine[-1] if mine else None
        cost = costs.get(name)
        views.append(
            StepView(
                name=name,
                status=last.status if last else waiting,
                site=last.site if last else None,
                planned_site=planned.get(name),
                offering=last.offering if last else None,
                attempts=len([a for a in mine if a.status != "cached"]),
                duration_s=_duration(last) if last else None,
                metrics=last.metrics if last else {},
                error=last.error if last else None,
                planned_usd=cost.planned_usd if cost else Decimal(0),
                actual_usd=cost.actual_usd if cost else Decimal(0),
            )
        )
    return views


def step_attempts(db: Database, run_id: str, step: str) -> list[AttemptView]:
    """Every attempt of one step of the run, first to last."""
    return [
        AttemptView(
            attempt=a.attempt,
            status=a.status,
            site=a.site,
            offering=a.offering,
            pricing=a.pricing,
            started=a.started_at,
            finished=a.finished_at,
            duration_s=_duration(a),
            exit_code=a.exit_code,
            error=a.error,
            cached_from=a.cached_from,
            log_path=a.log_path,
            metrics=a.metrics,
        )
        for a in Repository(db).attempts(run_id)
        if a.step == step
    ]


def transfer_views(db: Database, run_id: str) -> list[TransferView]:
    """The run's copies between sites, oldest first."""
    return [_transfer(t) for t in Repository(db).transfers(run_id)]


def planned_sites(db: Database, run_id: str) -> dict[str, str]:
    """Step → the site the run's plan put it at (the planned placement rows of the ledger)."""
    query = select(LedgerRow.step, LedgerRow.site).where(
        LedgerRow.run_id == run_id,
        LedgerRow.kind == "planned",
        LedgerRow.to_site.is_(None),
        LedgerRow.step.is_not(None),
        LedgerRow.service_category != CATEGORY_STORAGE,  # a planned month of a replica is not a placement
    )
    with db.session() as session:
        return {str(step): str(site) for step, site in session.execute(query).all()}


def _summary(run: RunRow, planned: Decimal, actual: Decimal, sites: Sequence[str]) -> RunSummary:
    end = run.finished_at or (utcnow() if run.status == "running" else run.created_at)
    return RunSummary(
        id=run.id,
        pipeline=run.pipeline,
        status=run.status,
        started=run.created_at,
        finished=run.finished_at,
        duration_s=max(0.0, (end - run.created_at).total_seconds()),
        planned_usd=planned,
        actual_usd=actual,
        sites=tuple(sites),
        error=run.error,
        pipeline_file=run.pipeline_file,
    )


def _sites_by_run(db: Database, run_id: str | None = None) -> dict[str, tuple[str, ...]]:
    """Run → the sites its attempts ran at, in the order first used."""
    query = select(StepRunRow.run_id, StepRunRow.site).order_by(StepRunRow.id)
    if run_id is not None:
        query = query.where(StepRunRow.run_id == run_id)
    found: dict[str, dict[str, None]] = {}
    with db.session() as session:
        for run, site in session.execute(query).all():
            found.setdefault(run, {})[site] = None
    return {run: tuple(sites) for run, sites in found.items()}


def _duration(attempt: StepRunRow) -> float | None:
    if attempt.duration_s is not None:
        return attempt.duration_s
    if attempt.status == "running":
        return max(0.0, (utcnow() - attempt.started_at).total_seconds())
    return None


def _transfer(t: TransferRow) -> TransferView:
    return TransferView(t.artifact, t.from_site, t.to_site, t.bytes, t.reason, t.step, t.at)
