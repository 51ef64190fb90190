"""Spend over time by team, project, provider or site, and budgets: sums of the ledger's actual rows.

Money stays in integer micro-dollars until it is shown. Time buckets are hours when the ledger spans two
days or less (a demo, a test), else days, so the chart has more than one bar either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from stratus.ledger import LedgerRow, from_micros
from stratus.state import Database

__all__ = ["DIMENSIONS", "BudgetView", "SpendSeries", "budget_views", "spend_over_time"]

#: What spend can be broken down by on the cost page, and the ledger column of each.
DIMENSIONS: Mapping[str, Any] = {
    "team": LedgerRow.team,
    "project": LedgerRow.project,
    "provider": LedgerRow.provider_name,
    "site": LedgerRow.site,
}
_HOURLY_SPAN = timedelta(days=2)
_NONE = "(none)"


@dataclass(frozen=True)
class SpendSeries:
    """Actual spend per time bucket and group: ``cells[bucket][group]`` in micro-dollars."""

    by: str
    bucket: str  # "hour" or "day"
    buckets: tuple[str, ...]
    groups: tuple[str, ...]
    cells: Mapping[str, Mapping[str, int]]

    def total(self, group: str) -> Decimal:
        """All the spend of one group, in dollars."""
        return from_micros(sum(cell.get(group, 0) for cell in self.cells.values()))


@dataclass(frozen=True)
class BudgetView:
    """One budget from the platform file: its fields as written, and spend so far when its scope is known."""

    fields: tuple[tuple[str, str], ...]
    limit_usd: Decimal | None
    spent_usd: Decimal | None

    @property
    def used_fraction(self) -> float | None:
        """Spent over limit (may exceed 1), when both are known and the limit is positive."""
        if self.limit_usd is None or self.spent_usd is None or self.limit_usd <= 0:
            return None
        return float(self.spent_usd / self.limit_usd)


def spend_over_time(db: Database, by: str) -> SpendSeries:
    """Actual (not planned) EffectiveCost per hour or day and per value of ``by`` (one of DIMENSIONS)."""
    column = DIMENSIONS[by]
    query = select(LedgerRow.charge_period_start, column, LedgerRow.effective_cost_micro_usd).where(
        LedgerRow.kind != "planned"
    )
    with db.session() as session:
        found = [(start, key, int(cost)) for start, key, cost in session.execute(query).all()]
    if not found:
        return SpendSeries(by, "day", (), (), {})
    starts = [start for start, _, _ in found]
    hourly = max(starts) - min(starts) <= _HOURLY_SPAN
    fmt = "%Y-%m-%d %H:00" if hourly else "%Y-%m-%d"
    cells: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for start, key, cost in sorted(found, key=lambda r: r[0]):
        group = str(key) if key else _NONE
        bucket = cells.setdefault(start.strftime(fmt), {})
        bucket[group] = bucket.get(group, 0) + cost
        totals[group] = totals.get(group, 0) + cost
    groups = tuple(sorted(totals, key=lambda g: (-totals[g], g)))
    return SpendSeries(by, "hour" if hourly else "day", tuple(cells), groups, cells)


def budget_views(platform: object, db: Database) -> list[BudgetView] | None:
    """The platform's ``budgets``, or None when this platform model has no such attribute (or it is unset).

    A budget is shown field by field as written; when it names a scope the ledger groups by (team,
    project, provider, site) and a dollar limit (a field ending in ``_usd``), spend in that scope is
    summed next to it.
    """
    budgets = getattr(platform, "budgets", None)
    if not budgets:
        return None
    items: Sequence[Any] = list(budgets.values()) if isinstance(budgets, Mapping) else list(budgets)
    names = list(budgets) if isinstance(budgets, Mapping) else [None] * len(items)
    views = []
    for name, item in zip(names, items, strict=True):
        fields = _fields(item)
        if name is not None:
            fields = {"name": str(name), **fields}
        views.append(_budget(fields, db))
    return views


def _fields(item: Any) -> dict[str, Any]:
    if hasattr(item, "model_dump"):
        dumped = item.model_dump(mode="json", exclude_none=True)
        return dumped if isinstance(dumped, dict) else {"value": dumped}
    if isinstance(item, Mapping):
        return dict(item)
    return {"value": item}


def _budget(fields: Mapping[str, Any], db: Database) -> BudgetView:
    limit: Decimal | None = None
    for key, value in fields.items():
        if key.endswith("_usd") and isinstance(value, (int, float, str)):
            try:
                limit = Decimal(str(value))
            except ArithmeticError:
                continue
            break
    scope = {k: str(v) for k, v in fields.items() if k in DIMENSIONS and isinstance(v, str)}
    spent: Decimal | None = None
    if limit is not None and scope:
        query = select(LedgerRow.effective_cost_micro_usd).where(LedgerRow.kind != "planned")
        for key, value in scope.items():
            query = query.where(DIMENSIONS[key] == value)
        with db.session() as session:
            spent = from_micros(sum(int(c) for c in session.scalars(query)))
    shown = tuple((str(k), _text(v)) for k, v in fields.items())
    return BudgetView(shown, limit, spent)


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return str(value)
