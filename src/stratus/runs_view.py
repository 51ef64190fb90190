"""What happened in the runs of a state database, as typed values: the list, one run, its logs.

Read-only queries shared by ``stratus runs`` and anything else that shows runs (a dashboard): they
return dataclasses and never print. They read the tables the runner writes (``runs``, ``step_runs``,
``transfers``, ``ledger``) with plain SQL: the default SQLite file through the standard library's
``sqlite3``, opened read-only, so ``stratus runs ls`` starts without importing SQLAlchemy (about half a
second of start-up on a small machine); any other URL (PostgreSQL) through SQLAlchemy. The same
statements, with ``:name`` parameters, serve both.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stratus.errors import ConfigError, StratusError
from stratus.redact import display_url
from stratus.state import jsontext

__all__ = [
    "Attempt",
    "LogChunk",
    "LogFile",
    "Replan",
    "RunDetail",
    "RunSummary",
    "RunsView",
    "StepView",
    "TransferView",
    "follow_logs",
    "open_view",
]

Rows = Callable[[str, Mapping[str, Any]], list[dict[str, Any]]]

#: How long ``follow_logs`` sleeps between looks at the log files and the run's status.
FOLLOW_POLL_S = 0.5


@dataclass(frozen=True)
class RunSummary:
    """One line of ``stratus runs ls``: money in integer micro-dollars, as the ledger keeps it."""

    id: str
    pipeline: str
    status: str
    started: datetime
    finished: datetime | None
    duration_s: float  # to now while it runs
    planned_micro_usd: int
    actual_micro_usd: int
    sites: tuple[str, ...]
    error: str | None
    runner: str | None


@dataclass(frozen=True)
class Attempt:
    """One attempt of one step."""

    step: str
    attempt: int
    site: str
    offering: str
    pricing: str
    status: str
    started: datetime
    finished: datetime | None
    duration_s: float | None
    metrics: Mapping[str, Any]
    error: str | None
    log_path: Path | None
    cached_from: str | None


@dataclass(frozen=True)
class StepView:
    """A step of a run: where its last attempt ran, how it ended, and every attempt."""

    name: str
    status: str
    site: str
    offering: str
    duration_s: float | None
    metrics: Mapping[str, Any]
    attempts: tuple[Attempt, ...]


@dataclass(frozen=True)
class TransferView:
    """One copy between sites that the run made."""

    artifact: str
    from_site: str
    to_site: str
    bytes: int
    reason: str
    step: str | None
    at: datetime


@dataclass(frozen=True)
class Replan:
    """A step that ran somewhere else than first planned: re-planned at start around a silent site, or
    moved between attempts (preempted, or its site failed)."""

    step: str
    from_site: str
    to_site: str
    why: str


@dataclass(frozen=True)
class RunDetail:
    """``stratus runs show``: the run, its steps in the order they started, transfers and re-plans."""

    run: RunSummary
    steps: tuple[StepView, ...]
    transfers: tuple[TransferView, ...]
    replans: tuple[Replan, ...]


@dataclass(frozen=True)
class LogFile:
    """The log of one attempt; ``path`` may not exist yet (an attempt that is staging its inputs)."""

    step: str
    attempt: int
    site: str
    path: Path


@dataclass(frozen=True)
class LogChunk:
    """Complete new lines of one attempt's log."""

    log: LogFile
    lines: tuple[str, ...]


@dataclass
class RunsView:
    """Queries over one state database; :func:`open_view` makes one."""

    rows: Rows
    where: str  # the database, as shown to people (password hidden)
    close: Callable[[], None] = field(default=lambda: None)

    def runs(self, limit: int | None = None) -> list[RunSummary]:
        """Runs, the latest started first."""
        found = self.rows(_RUNS + (" LIMIT :limit" if limit else ""), {"limit": limit} if limit else {})
        return self._summaries(found)

    def run(self, run_id: str) -> RunSummary:
        """One run; a ConfigError listing recent runs when there is no such run."""
        found = self._summaries(self.rows(_RUN, {"id": run_id}))
        if not found:
            recent = ", ".join(r.id for r in self.runs(limit=5)) or "none yet"
            raise ConfigError(f"no run {run_id!r} in {self.where}; recent runs: {recent}", field="RUN")
        return found[0]

    def detail(self, run_id: str) -> RunDetail:
        """Everything ``stratus runs show`` prints about one run."""
        run = self.run(run_id)
        attempts = self.attempts(run_id)
        steps: dict[str, list[Attempt]] = {}
        for a in attempts:
            steps.setdefault(a.step, []).append(a)
        views = tuple(_step_view(name, tries) for name, tries in steps.items())
        transfers = tuple(
            TransferView(
                r["artifact"],
                r["from_site"],
                r["to_site"],
                int(r["bytes"]),
                r["reason"],
                r["step"],
                _utc(r["at"]),
            )
            for r in self.rows(_TRANSFERS, {"id": run_id})
        )
        planned: dict[str, set[str]] = {}
        for r in _optional(self.rows, _PLANNED_SITES, {"id": run_id}):
            planned.setdefault(r["step"], set()).add(r["site"])
        return RunDetail(run, views, transfers, tuple(_replans(steps, planned)))

    def attempts(self, run_id: str) -> list[Attempt]:
        """Every attempt of every step of the run, in the order they started."""
        return [_attempt(r) for r in self.rows(_ATTEMPTS, {"id": run_id})]

    def logs(self, run_id: str, step: str | None = None) -> list[LogFile]:
        """The log file of each attempt (of ``step`` only, when given), in the order they started."""
        attempts = self.attempts(run_id)
        if step is not None and not any(a.step == step for a in attempts):
            known = ", ".join(dict.fromkeys(a.step for a in attempts)) or "none started yet"
            raise ConfigError(f"run {run_id} has no step {step!r}; its steps: {known}", field="STEP")
        return [
            LogFile(a.step, a.attempt, a.site, a.log_path)
            for a in attempts
            if a.log_path is not None and (step is None or a.step == step)
        ]

    def _summaries(self, found: list[dict[str, Any]]) -> list[RunSummary]:
        if not found:
            return []
        ids = {r["id"] for r in found}
        costs = {r["run_id"]: r for r in _optional(self.rows, _COSTS, {}) if r["run_id"] in ids}
        sites: dict[str, list[str]] = {}
        for r in self.rows(_SITES, {}):
            if r["run_id"] in ids:
                sites.setdefault(r["run_id"], []).append(r["site"])
        now = datetime.now(UTC)
        out = []
        for r in found:
            started, finished = _utc(r["created_at"]), _maybe_utc(r["finished_at"])
            cost = costs.get(r["id"], {})
            out.append(
                RunSummary(
                    id=r["id"],
                    pipeline=r["pipeline"],
                    status=r["status"],
                    started=started,
                    finished=finished,
                    duration_s=max(0.0, ((finished or now) - started).total_seconds()),
                    planned_micro_usd=int(cost.get("planned") or 0),
                    actual_micro_usd=int(cost.get("actual") or 0),
                    sites=tuple(sorted(sites.get(r["id"], []))),
                    error=r["error"],
                    runner=r["runner"],
                )
            )
        return out


def open_view(url: str) -> RunsView | None:
    """A view of the state database at ``url``; None when its SQLite file does not exist (no runs yet).

    Never creates anything: looking at runs must not leave a database behind.
    """
    shown = display_url(url)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            return None
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
        except sqlite3.Error as exc:
            raise StratusError(f"cannot open the state database {shown}: {exc}") from exc
        conn.row_factory = sqlite3.Row

        def sqlite_rows(sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
            try:
                return [dict(r) for r in conn.execute(sql, dict(params))]
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []  # a database no run has written to yet
                raise StratusError(f"cannot read the state database {shown}: {exc}") from exc

        return RunsView(sqlite_rows, shown, conn.close)
    return _sqlalchemy_view(url, shown)


def _sqlalchemy_view(url: str, shown: str) -> RunsView:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from stratus.state import open_database

    engine = open_database(url).engine

    def rows(sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        try:
            with engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(text(sql), dict(params))]
        except SQLAlchemyError as exc:
            raise StratusError(f"cannot read the state database {shown}: {exc}") from exc

    return RunsView(rows, shown, engine.dispose)


def follow_logs(
    view: RunsView,
    run_id: str,
    step: str | None = None,
    *,
    follow: bool = False,
    poll_s: float = FOLLOW_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[LogChunk]:
    """The run's step logs, attempt by attempt; with ``follow``, new lines as they are written, until
    the run has ended and every log has been read to its end.

    Only complete lines are yielded while a step writes; a last line without its newline comes at the
    end. Attempts that start while following (retries, later steps) join in the order they start.
    """
    offsets: dict[Path, int] = {}
    while True:
        ended = not follow or view.run(run_id).status != "running"
        for log in view.logs(run_id, step):
            lines, offsets[log.path] = _read_new(log.path, offsets.get(log.path, 0), final=ended)
            if lines:
                yield LogChunk(log, lines)
        if ended:
            return
        sleep(poll_s)


def _read_new(path: Path, offset: int, *, final: bool) -> tuple[tuple[str, ...], int]:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
    except OSError:  # not created yet, or removed with the attempt's folder
        return (), offset
    end = len(chunk) if final else chunk.rfind(b"\n") + 1
    text = chunk[:end].decode("utf-8", errors="replace")
    return tuple(text.splitlines()), offset + end


def _step_view(name: str, tries: Sequence[Attempt]) -> StepView:
    last = tries[-1]
    done = [a for a in tries if a.status in ("succeeded", "cached")]
    shown = done[-1] if done else last
    return StepView(
        name, last.status, last.site, last.offering, shown.duration_s, shown.metrics, tuple(tries)
    )


def _replans(steps: Mapping[str, Sequence[Attempt]], planned: Mapping[str, set[str]]) -> Iterator[Replan]:
    for name, tries in steps.items():
        first = tries[0]
        sites = planned.get(name)
        if sites and first.site not in sites and first.status != "cached":
            yield Replan(name, ", ".join(sorted(sites)), first.site, "re-planned before it started")
        for before, after in itertools.pairwise(tries):
            if after.site != before.site:
                why = f"attempt {before.attempt} {before.status}"
                if before.error:
                    why += f": {before.error}"
                yield Replan(name, before.site, after.site, why)


def _attempt(r: Mapping[str, Any]) -> Attempt:
    return Attempt(
        step=r["step"],
        attempt=int(r["attempt"]),
        site=r["site"],
        offering=r["offering"],
        pricing=r["pricing"],
        status=r["status"],
        started=_utc(r["started_at"]),
        finished=_maybe_utc(r["finished_at"]),
        duration_s=None if r["duration_s"] is None else float(r["duration_s"]),
        metrics=jsontext.load(r["metrics_json"], {}),
        error=r["error"],
        log_path=Path(r["log_path"]) if r["log_path"] else None,
        cached_from=r["cached_from"],
    )


def _optional(rows: Rows, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of a table a database may lack (the ledger, before any run was billed), else none."""
    try:
        return rows(sql, params)
    except StratusError:
        return []


def _utc(value: Any) -> datetime:
    """SQLite gives the stored naive-UTC text, PostgreSQL a datetime: both become aware UTC."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _maybe_utc(value: Any) -> datetime | None:
    return None if value is None else _utc(value)


_RUN_COLUMNS = "SELECT id, pipeline, status, error, runner, created_at, finished_at FROM runs"
_RUNS = f"{_RUN_COLUMNS} ORDER BY created_at DESC"
_RUN = f"{_RUN_COLUMNS} WHERE id = :id"
_SITES = "SELECT DISTINCT run_id, site FROM step_runs"
_COSTS = (
    'SELECT "x_RunId" AS run_id, '
    'SUM(CASE WHEN "x_Kind" = \'planned\' THEN "EffectiveCost" ELSE 0 END) AS planned, '
    'SUM(CASE WHEN "x_Kind" = \'planned\' THEN 0 ELSE "EffectiveCost" END) AS actual '
    'FROM ledger GROUP BY "x_RunId"'
)
_ATTEMPTS = (
    "SELECT step, attempt, site, offering, pricing, status, started_at, finished_at, duration_s, "
    "metrics_json, error, log_path, cached_from FROM step_runs WHERE run_id = :id ORDER BY started_at, id"
)
_TRANSFERS = (
    "SELECT artifact, from_site, to_site, bytes, reason, step, at FROM transfers "
    "WHERE run_id = :id ORDER BY at, id"
)
# The plan's placements: its compute rows, one per step and site (FOCUS service categories).
_PLANNED_SITES = (
    'SELECT DISTINCT "x_Step" AS step, "x_Site" AS site FROM ledger WHERE "x_RunId" = :id '
    'AND "x_Kind" = \'planned\' AND "x_Step" IS NOT NULL '
    "AND \"ServiceCategory\" IN ('Compute', 'AI and Machine Learning')"
)
