"""The budget half of ``stratus plan`` and ``stratus run``: the plan against what is left this month.

Reads this month's spend from the ledger (never creating a state database to do so), shows one line per
budget the pipeline falls under with the alerts its plan reaches, and refuses a plan over budget (exit
7) unless ``--allow-over-budget``, in which case the override is written to the audit trail with the
figures it overrode.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stratus.budget import BudgetLine, budget_lines, over_budget_error, usd_text
from stratus.cli.audit_cmd import actor
from stratus.cli.output import stderr
from stratus.cli.state_db import open_existing
from stratus.config import Pipeline
from stratus.ledger import Month, Scope, month_spend
from stratus.planner import Plan
from stratus.state import open_database
from stratus.state.audit import append_audit
from stratus.workspace import Workspace

__all__ = ["ALLOW_OVER_BUDGET", "enforce_budgets", "plan_budgets", "render_budgets"]

ALLOW_OVER_BUDGET = typer.Option(
    False,
    "--allow-over-budget",
    help="Go ahead even when the plan would exceed a team's or project's monthly budget; the override "
    "is recorded in the audit trail (stratus audit ls).",
)


def plan_budgets(workspace: Workspace, pipeline: Pipeline, plan: Plan) -> list[BudgetLine]:
    """The budgets ``pipeline`` falls under, each with this month's spend and ``plan``'s cost."""
    budgets = workspace.platform.budgets
    if budgets is None:
        return []
    month = Month.current()
    spent: dict[Scope, dict[str, int]] = {}
    db, _ = open_existing(workspace, workspace.explicit_state_url)
    if db is not None:
        try:
            spent = {"team": month_spend(db, month, "team"), "project": month_spend(db, month, "project")}
        finally:
            db.engine.dispose()
    return budget_lines(
        budgets, month=month, spent=spent, tags=pipeline.tags, planned_usd=plan.total_cost_usd
    )


def render_budgets(out: Console, lines: list[BudgetLine]) -> None:
    """One row per budget: limit, spent, planned, after the plan, what is left, and its alert state."""
    if not lines:
        return
    table = Table(
        "budget",
        "limit",
        "spent",
        "planned",
        "after plan",
        "left after",
        "used",
        "status",
        title=f"Budgets this month ({lines[0].month}, USD)",
    )
    for line in lines:
        table.add_row(
            escape(line.label),
            usd_text(line.limit_micro_usd),
            usd_text(line.spent_micro_usd),
            usd_text(line.planned_micro_usd),
            usd_text(line.after_micro_usd),
            usd_text(line.limit_micro_usd - line.after_micro_usd),
            f"{line.used:.0%}",
            _status(line),
        )
    out.print(table)
    for line in lines:
        if line.newly_reached and not line.over:
            crossed = ", ".join(f"{t:.0%}" for t in line.newly_reached)
            out.print(f"[yellow]alert:[/] this plan takes {escape(line.label)} past {crossed} of its budget")


def _status(line: BudgetLine) -> str:
    if line.over:
        return "[bold red]over budget[/]"
    if line.reached:
        return f"[yellow]alert {line.reached[-1]:.0%}[/]"
    return "[green]ok[/]"


def enforce_budgets(
    lines: list[BudgetLine],
    *,
    allow_over_budget: bool,
    workspace: Workspace,
    what: str,
) -> None:
    """Raise OverBudgetError (exit 7) for a plan over budget; with the override, warn and audit it."""
    error = over_budget_error(lines)
    if error is None:
        return
    if not allow_over_budget:
        raise error
    over = [line for line in lines if line.over]
    stderr().print(
        "[yellow]warning:[/] over budget, going ahead because of --allow-over-budget (recorded): "
        + escape("; ".join(line.summary() for line in over))
    )
    db = open_database(workspace.state_url())  # its own: this one is disposed of at once
    try:
        append_audit(
            db,
            actor=actor(),
            command="budget override",
            arguments=[what, *(line.summary() for line in over)],
            exit_code=0,
        )
    finally:
        db.engine.dispose()
