"""Budgets and quotas: what a team or project may spend in a month, and hold at once at a site.

:func:`budget_lines` sets a plan against this month's spend from the ledger (``stratus plan`` and
``stratus run`` refuse one over budget with exit code 7 unless ``--allow-over-budget``);
:class:`QuotaUsage` is what the runner's scheduler asks before it starts a step.
"""

from stratus.budget.check import BudgetLine, budget_lines, over_budget_error, usd_text
from stratus.budget.quota import Demand, QuotaUsage, check_quotas, placement_sites, team_quotas

__all__ = [
    "BudgetLine",
    "Demand",
    "QuotaUsage",
    "budget_lines",
    "check_quotas",
    "over_budget_error",
    "placement_sites",
    "team_quotas",
    "usd_text",
]
