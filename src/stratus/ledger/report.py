"""Sum the ledger by any mix of team, project, provider, site, step, ...: planned next to actual.

Sums run in SQL over integer micro-dollars, so a report is exact to the micro-dollar whatever the
database. Groups come out in the order their charges began, which puts steps in the order they ran.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, case, func, select

from stratus.ledger import money
from stratus.ledger.model import LedgerRow
from stratus.ledger.period import Month
from stratus.state import Database

__all__ = ["GROUP_BY", "Report", "ReportRow", "check_group_by", "latest_run_id", "report", "run_ids"]

# What `--by` accepts, and the column each name groups on.
_GROUP_COLUMNS: Mapping[str, Any] = {
    "team": LedgerRow.team,
    "project": LedgerRow.project,
    "provider": LedgerRow.provider_name,
    "region": LedgerRow.region_id,
    "site": LedgerRow.site,
    "run": LedgerRow.run_id,
    "step": LedgerRow.step,
    "category": LedgerRow.service_category,
    "pricing": LedgerRow.pricing,
}
GROUP_BY: tuple[str, ...] = tuple(_GROUP_COLUMNS)


@dataclass(frozen=True)
class ReportRow:
    """One group's planned, actual and on-demand-list cost, in integer micro-dollars."""

    group: tuple[str | None, ...]
    planned_micro_usd: int
    actual_micro_usd: int
    list_micro_usd: int

    @property
    def planned_usd(self) -> Decimal:
        """Planned cost in dollars (six places)."""
        return money.from_micros(self.planned_micro_usd)

    @property
    def actual_usd(self) -> Decimal:
        """What was actually paid (EffectiveCost), in dollars."""
        return money.from_micros(self.actual_micro_usd)

    @property
    def list_usd(self) -> Decimal:
        """What the actual usage would have cost at on-demand list prices, in dollars."""
        return money.from_micros(self.list_micro_usd)

    @property
    def delta_usd(self) -> Decimal:
        """Actual minus planned: positive means over plan."""
        return money.from_micros(self.actual_micro_usd - self.planned_micro_usd)


@dataclass(frozen=True)
class Report:
    """A grouped cost report for one run (or all runs when ``run_id`` is None), with totals."""

    by: tuple[str, ...]
    run_id: str | None
    rows: tuple[ReportRow, ...]
    totals: ReportRow

    @property
    def empty(self) -> bool:
        """True when no ledger row matched (nothing planned, nothing spent)."""
        return not self.rows

    def to_json(self) -> dict[str, Any]:
        """The ``stratus cost report --json`` object; money as JSON numbers rounded to micro-dollars."""

        def amounts(row: ReportRow) -> dict[str, float]:
            return {
                "planned_usd": float(row.planned_usd),
                "actual_usd": float(row.actual_usd),
                "list_usd": float(row.list_usd),
            }

        return {
            "run_id": self.run_id,
            "by": list(self.by),
            "currency": "USD",
            "rows": [{**dict(zip(self.by, row.group, strict=True)), **amounts(row)} for row in self.rows],
            "totals": amounts(self.totals),
        }

    def to_csv(self) -> str:
        """The grouped rows as CSV: the ``by`` columns, then planned_usd, actual_usd, list_usd (no total)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*self.by, "planned_usd", "actual_usd", "list_usd"])
        for row in self.rows:
            writer.writerow(
                [
                    *("" if v is None else v for v in row.group),
                    money.format_usd(row.planned_micro_usd),
                    money.format_usd(row.actual_micro_usd),
                    money.format_usd(row.list_micro_usd),
                ]
            )
        return out.getvalue()


def check_group_by(names: Sequence[str]) -> tuple[str, ...]:
    """Normalise ``--by`` names (case, spaces, duplicates); ValueError listing the valid ones otherwise."""
    cleaned: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name not in _GROUP_COLUMNS:
            raise ValueError(f"cannot group by {raw!r}; expected any of {', '.join(GROUP_BY)}")
        if name not in cleaned:
            cleaned.append(name)
    return tuple(cleaned)


def report(db: Database, *, by: Sequence[str], run_id: str | None, month: Month | None = None) -> Report:
    """Planned, actual and list cost per group of ``by`` for one run (all runs when ``run_id`` is None),
    of the rows whose charge period starts in ``month`` when one is given."""
    names = check_group_by(by)
    keys = [_GROUP_COLUMNS[n] for n in names]
    planned = LedgerRow.kind == "planned"
    query = select(
        *keys,
        _sum(case((planned, LedgerRow.effective_cost_micro_usd), else_=0)),
        _sum(case((planned, 0), else_=LedgerRow.effective_cost_micro_usd)),
        _sum(case((planned, 0), else_=LedgerRow.list_cost_micro_usd)),
        func.min(LedgerRow.charge_period_start),
    )
    if run_id is not None:
        query = query.where(LedgerRow.run_id == run_id)
    if month is not None:
        query = query.where(
            LedgerRow.charge_period_start >= month.start, LedgerRow.charge_period_start < month.end
        )
    if keys:
        query = query.group_by(*keys)
    with db.session() as session:
        found = session.execute(query).all()
    counted = [r for r in found if r[-1] is not None]  # an ungrouped sum over no rows still returns one
    counted.sort(key=lambda r: (_sortable(r[-1]), tuple("" if v is None else str(v) for v in r[: len(keys)])))
    rows = tuple(
        ReportRow(tuple(r[: len(keys)]), int(r[len(keys)]), int(r[len(keys) + 1]), int(r[len(keys) + 2]))
        for r in counted
    )
    totals = ReportRow(
        (),
        sum(r.planned_micro_usd for r in rows),
        sum(r.actual_micro_usd for r in rows),
        sum(r.list_micro_usd for r in rows),
    )
    return Report(names, run_id, rows, totals)


def run_ids(db: Database) -> list[str]:
    """Every run with ledger rows, the most recently started first."""
    started = func.min(LedgerRow.charge_period_start)
    query = select(LedgerRow.run_id, started).group_by(LedgerRow.run_id)
    with db.session() as session:
        found = list(session.execute(query).all())
    found.sort(key=lambda r: (_sortable(r[1]), r[0]), reverse=True)
    return [r[0] for r in found]


def latest_run_id(db: Database) -> str | None:
    """The run that started last, by its earliest charge; None when the ledger is empty."""
    runs = run_ids(db)
    return runs[0] if runs else None


def _sum(expression: ColumnElement[int]) -> ColumnElement[int]:
    # PostgreSQL sums BIGINT to NUMERIC; coalesce keeps an all-NULL group at 0 rather than None.
    return func.coalesce(func.sum(expression), 0)


def _sortable(value: Any) -> str:
    # min() over a DateTime column comes back as a datetime on PostgreSQL and as ISO text on SQLite.
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    return str(value)
