"""``stratus run``: plan, then execute the pipeline across its sites, resumably, and say what happened."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from stratus.budget import BudgetLine
from stratus.cli.budget_view import ALLOW_OVER_BUDGET, enforce_budgets, plan_budgets, render_budgets
from stratus.cli.inputs import OBJECTIVE, PIPELINE, PLATFORM, load_files, parse_objective
from stratus.cli.output import console, print_json, stderr
from stratus.cli.plan_cmd import make_plan
from stratus.cli.render_run import Progress, render_failure, render_report
from stratus.runner import run_file

__all__ = ["run_command"]


def run_command(
    pipeline: Path = PIPELINE,
    platform: Path | None = PLATFORM,
    resume: str | None = typer.Option(
        None, "--resume", help="Continue this run: finished steps are kept, interrupted ones redone."
    ),
    objective: str = OBJECTIVE,
    state_url: str | None = typer.Option(
        None,
        "--state-url",
        envvar="STRATUS_STATE_URL",
        help="SQLAlchemy URL of the state database. Default: .stratus/state.db beside the platform file.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object for scripts."),
    repair: bool = typer.Option(
        True,
        "--repair/--no-repair",
        help="First write the replicas earlier runs left pending, at sites that answer again.",
    ),
    allow_over_budget: bool = ALLOW_OVER_BUDGET,
) -> None:
    """Plan, then run every step on its site, in parallel up to each site's capacity.

    Steps whose code, params and inputs match an earlier success are reused, not rerun.

    A step's log lines are printed as they happen, prefixed [step@site] (on stderr with --json).

    Infrastructure failures retry with backoff; an error in a step's own code fails it at once, showing
    its log's last lines (unless the step sets retry_on_error: true). A preempted step moves to the
    next-best site; a site whose store does not answer (probed before the run) or that fails under a
    step is marked down for the run, and the remaining steps are re-planned on the healthy sites.

    Example: stratus run examples/fraud-detection/pipeline.yaml

    With `budgets:` in the platform file, the plan is first set against this month's spend of the
    pipeline's team and project; a run over budget does not start (exit 7) unless --allow-over-budget.
    With `quotas:`, a team's steps wait for capacity at a site rather than exceed its vCPU/GPU quota.

    Exit codes: 0 the run succeeded, 1 it failed (resume it with --resume RUN_ID), 2 usage or config error,
    3 infeasible, 7 over budget.
    """
    goal = parse_objective(objective)
    workspace, model = load_files(pipeline, platform, state_url)
    platform_model = workspace.platform
    steps = [f"dataset:{name}" for name in model.datasets if model.datasets[name].make] + list(model.steps)
    out = stderr() if as_json else console()
    lines: list[BudgetLine] = []
    if resume is None and (platform_model.budgets is not None or platform_model.quotas):
        # Before anything is created or started: the same plan `stratus plan` shows, against the budgets.
        planned = make_plan(workspace, model, objective=goal)
        lines = plan_budgets(workspace, model, planned)
        render_budgets(out, lines)
        enforce_budgets(
            lines, allow_over_budget=allow_over_budget, workspace=workspace, what=f"run {pipeline}"
        )
    with Progress(out, steps) as progress:
        report = run_file(
            pipeline,
            workspace,
            resume=resume,
            objective=goal,
            on_event=progress,
            repair=repair,
        )
    hint = f"stratus run {pipeline} --resume {report.run_id}"
    if as_json:
        payload = report.to_json()
        if platform_model.budgets is not None and resume is None:
            payload["budgets"] = [line.to_json() for line in lines]
        print_json(payload)
    else:
        render_report(out, report, hint)
    if not report.succeeded:
        if as_json:
            for step in report.steps:
                if step.status == "failed":
                    render_failure(stderr(), step)
            stderr().print(f"[bold red]failed:[/] {escape(report.error or '')}", soft_wrap=True)
        sys.exit(1)
