"""What each team or project has actually spent in a calendar month: the figure budgets are held to.

Actual means EffectiveCost of every usage row (compute, transfer, storage), never the ``planned`` rows
a run starts with, so a plan counts once: as the plan, until the run's usage replaces it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from sqlalchemy import func, select

from stratus.ledger.model import LedgerRow
from stratus.ledger.period import Month
from stratus.state import Database

__all__ = ["Scope", "month_spend"]

Scope = Literal["team", "project"]
_COLUMN: Mapping[Scope, Any] = {"team": LedgerRow.team, "project": LedgerRow.project}


def month_spend(db: Database, month: Month, scope: Scope) -> dict[str, int]:
    """Micro-dollars actually spent in ``month`` per team (or project) tag; untagged rows are left out."""
    column = _COLUMN[scope]
    query = (
        select(column, func.coalesce(func.sum(LedgerRow.effective_cost_micro_usd), 0))
        .where(
            LedgerRow.kind != "planned",
            LedgerRow.charge_period_start >= month.start,
            LedgerRow.charge_period_start < month.end,
            column.is_not(None),
        )
        .group_by(column)
    )
    with db.session() as session:
        return {str(name): int(total) for name, total in session.execute(query).all()}
