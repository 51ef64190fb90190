"""A plan against the budgets it falls under: this month's spend from the ledger, plus what it would cost.

Pure arithmetic on integer micro-dollars (the ledger's unit), so the figures ``stratus plan`` shows and
those ``stratus cost report`` sums agree to the micro-dollar. A pipeline falls under its team's budget
(``tags.team``) and its project's (``tags.project``); spending up to the limit is allowed, one
micro-dollar over it is not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from stratus.config.budgets import Budgets
from stratus.errors import OverBudgetError
from stratus.ledger import Month, Scope, from_micros, to_micros
from stratus.units import format_usd

__all__ = ["BudgetLine", "budget_lines", "over_budget_error", "usd_text"]

_SCOPES: tuple[Scope, ...] = ("team", "project")


@dataclass(frozen=True)
class BudgetLine:
    """One budget in one month: its limit, what was spent, what the plan adds, and the alerts reached."""

    scope: Scope
    name: str
    month: Month
    limit_micro_usd: int
    spent_micro_usd: int
    planned_micro_usd: int
    alerts: tuple[float, ...]

    @property
    def label(self) -> str:
        """``team risk-ml``: how messages name the budget."""
        return f"{self.scope} {self.name}"

    @property
    def after_micro_usd(self) -> int:
        """Spent plus planned: where the month would stand if the plan ran at its estimate."""
        return self.spent_micro_usd + self.planned_micro_usd

    @property
    def remaining_micro_usd(self) -> int:
        """What is left of the budget before the plan (negative when already over)."""
        return self.limit_micro_usd - self.spent_micro_usd

    @property
    def used(self) -> float:
        """Spent plus planned as a fraction of the limit (1.0 = all of it)."""
        return self.after_micro_usd / self.limit_micro_usd

    @property
    def over(self) -> bool:
        """Whether spent plus planned exceeds the limit (reaching it exactly is allowed)."""
        return self.after_micro_usd > self.limit_micro_usd

    @property
    def reached(self) -> tuple[float, ...]:
        """Alert thresholds that spent plus planned reaches."""
        return tuple(t for t in self.alerts if self.after_micro_usd >= _share(self.limit_micro_usd, t))

    @property
    def newly_reached(self) -> tuple[float, ...]:
        """Thresholds the plan itself would cross: reached after it, not by this month's spend alone."""
        return tuple(t for t in self.reached if self.spent_micro_usd < _share(self.limit_micro_usd, t))

    def summary(self) -> str:
        """``team risk-ml (2025-03): spent $480.00 + planned $31.20 = $511.20 of $500.00 (102%)``."""
        return (
            f"{self.label} ({self.month}): spent {usd_text(self.spent_micro_usd)} + planned "
            f"{usd_text(self.planned_micro_usd)} = {usd_text(self.after_micro_usd)} of "
            f"{usd_text(self.limit_micro_usd)} ({self.used:.0%})"
        )

    def to_json(self) -> dict[str, Any]:
        """For ``--json``: money as JSON numbers rounded to micro-dollars, ``used`` as a fraction."""
        return {
            "scope": self.scope,
            "name": self.name,
            "month": str(self.month),
            "limit_usd": float(from_micros(self.limit_micro_usd)),
            "spent_usd": float(from_micros(self.spent_micro_usd)),
            "planned_usd": float(from_micros(self.planned_micro_usd)),
            "after_plan_usd": float(from_micros(self.after_micro_usd)),
            "remaining_usd": float(from_micros(self.remaining_micro_usd)),
            "used": round(self.used, 6),
            "alerts": list(self.alerts),
            "alerts_reached": list(self.reached),
            "over": self.over,
        }


def budget_lines(
    budgets: Budgets | None,
    *,
    month: Month,
    spent: Mapping[Scope, Mapping[str, int]],
    tags: Mapping[str, str] | None = None,
    planned_usd: Decimal = Decimal(0),
) -> list[BudgetLine]:
    """The budgets ``tags`` fall under (every budget when ``tags`` is None), each with the plan added.

    ``spent`` is this month's actual spend per scope and name, as :func:`stratus.ledger.month_spend`
    returns it; a budget with no spend yet starts at zero.
    """
    if budgets is None:
        return []
    planned = to_micros(planned_usd)
    lines: list[BudgetLine] = []
    for scope in _SCOPES:
        table = budgets.teams if scope == "team" else budgets.projects
        for name, spec in table.items():
            if tags is not None and tags.get(scope) != name:
                continue
            lines.append(
                BudgetLine(
                    scope=scope,
                    name=name,
                    month=month,
                    limit_micro_usd=to_micros(spec.monthly_usd),
                    spent_micro_usd=spent.get(scope, {}).get(name, 0),
                    planned_micro_usd=planned,
                    alerts=tuple(spec.alerts),
                )
            )
    return lines


def over_budget_error(lines: Sequence[BudgetLine]) -> OverBudgetError | None:
    """The refusal naming every budget the plan would exceed, or None when it fits them all."""
    over = [line for line in lines if line.over]
    if not over:
        return None
    details = "; ".join(
        f"{line.label}'s monthly budget ({line.month}): spent {usd_text(line.spent_micro_usd)} + planned "
        f"{usd_text(line.planned_micro_usd)} = {usd_text(line.after_micro_usd)}, over the limit of "
        f"{usd_text(line.limit_micro_usd)} by {usd_text(line.after_micro_usd - line.limit_micro_usd)}"
        for line in over
    )
    return OverBudgetError(
        f"over budget: {details}. Raise the budget in the platform file's budgets:, wait for next month, "
        "or pass --allow-over-budget to run anyway (recorded in the audit trail)"
    )


def usd_text(micros: int) -> str:
    """Micro-dollars for people, printed like every other amount (``$1,234.500000``: see ``format_usd``)."""
    return format_usd(from_micros(micros))


def _share(limit_micro_usd: int, fraction: float) -> Decimal:
    # Decimal(str()) so 0.8 × $500 is exactly $400, not a binary neighbour a micro-dollar off.
    return Decimal(limit_micro_usd) * Decimal(str(fraction))
