"""``stratus plan``: place a pipeline on the platform's sites and show why, and against which budgets."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from stratus.budget import check_quotas
from stratus.cli.budget_view import ALLOW_OVER_BUDGET, enforce_budgets, plan_budgets, render_budgets
from stratus.cli.inputs import OBJECTIVE, PIPELINE, PLATFORM, finite_flag, load_files, parse_objective
from stratus.cli.output import console, print_json
from stratus.cli.render_compare import render_comparison
from stratus.cli.render_plan import render_plan
from stratus.cli.state_db import open_existing
from stratus.config import Pipeline
from stratus.limits import MAX_FLAG_SECONDS
from stratus.planner import Plan, compare, plan
from stratus.planner.compare import Comparison
from stratus.planner.plan import Objective
from stratus.planner.sizes import with_sizes
from stratus.policy import policy_gate
from stratus.state import STATE_URL_ENV, MeasuredSize, last_output_sizes
from stratus.workspace import Workspace

__all__ = ["make_plan", "plan_command"]


def make_plan(
    workspace: Workspace,
    pipeline: Pipeline,
    *,
    objective: Objective,
    explain: bool = False,
    time_limit_s: float = 60.0,
) -> Plan:
    """The plan ``stratus plan`` shows (policies applied), checked against the team's quotas."""
    platform = workspace.platform
    gate = policy_gate(platform, workspace.platform_file.parent)
    try:
        result = plan(
            pipeline,
            platform,
            workspace.catalog,
            objective=objective,
            explain=explain,
            time_limit_s=time_limit_s,
            policy=gate.plan_policy(pipeline),
            measured=_measured_sizes(workspace, pipeline.name),
        )
    finally:
        gate.close()
    check_quotas(result, pipeline, platform)
    return result


def plan_command(
    pipeline: Path = PIPELINE,
    platform: Path | None = PLATFORM,
    objective: str = OBJECTIVE,
    explain: bool = typer.Option(False, "--explain", help="Also show runners-up and every rejected site."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object for scripts."),
    with_compare: bool = typer.Option(
        False,
        "--compare",
        help="Also price the best single-provider, single-region and SkyPilot-model plans, each with "
        "spot on and off, and split the saving into spot and placement across providers.",
    ),
    time_limit: float = typer.Option(
        60.0,
        "--time-limit",
        min=0.1,
        max=MAX_FLAG_SECONDS,
        callback=finite_flag,
        help="Seconds the MILP may take on a DAG; past it the best plan found is shown with its proven gap.",
    ),
    allow_over_budget: bool = ALLOW_OVER_BUDGET,
    state_url: str | None = typer.Option(
        None,
        "--state-url",
        envvar="STRATUS_STATE_URL",
        help="The state database whose ledger holds this month's spend. Default: beside the platform file.",
    ),
) -> None:
    """Place every step on the cheapest (or fastest) compliant site and offering.

    Example: stratus plan examples/fraud-detection/pipeline.yaml --explain

    With --compare, the same exact planner is re-run restricted to each provider, to each single region,
    and under SkyPilot's model, with spot on and off: what multi-cloud saves, and why.

    The platform's `policies:` judge every candidate; what they deny shows with --explain, and in the
    error when nothing is left for a step. With `budgets:`, the plan is shown against this month's spend
    of the pipeline's team and project (from the ledger), with the alerts it reaches.

    Exit codes: 0 planned, 2 usage or config error, 3 infeasible (the message says what to relax; also a
    step bigger than its team's quota), 7 over budget (unless --allow-over-budget).
    """
    goal = parse_objective(objective)
    workspace, pipeline_model = load_files(pipeline, platform, state_url)
    result = make_plan(
        workspace,
        pipeline_model,
        objective=goal,
        explain=explain,
        time_limit_s=time_limit,
    )
    comparison = (
        _compare(workspace, with_sizes(pipeline_model, result.sizes), goal, time_limit)
        if with_compare
        else None
    )
    lines = plan_budgets(workspace, pipeline_model, result)
    if as_json:
        payload = result.to_json()
        if workspace.platform.budgets is not None:
            payload["budgets"] = [line.to_json() for line in lines]
            payload["over_budget"] = any(line.over for line in lines)
        if comparison is not None:
            payload["compare"] = comparison.to_json()
        print_json(payload)
    else:
        render_plan(console(), result, explain=explain)
        if comparison is not None:
            render_comparison(console(), comparison)
        render_budgets(console(), lines)
    enforce_budgets(lines, allow_over_budget=allow_over_budget, workspace=workspace, what=f"plan {pipeline}")


def _measured_sizes(workspace: Workspace, pipeline: str) -> dict[str, MeasuredSize]:
    """The last measured output sizes of ``pipeline``, when its state exists; planning creates none."""
    db, _shown = open_existing(workspace, os.environ.get(STATE_URL_ENV))  # not --state-url: as before
    if db is None:
        return {}
    try:
        return last_output_sizes(db, pipeline)
    finally:
        db.engine.dispose()


def _compare(
    workspace: Workspace, pipeline: Pipeline, objective: Objective, time_limit_s: float
) -> Comparison:
    """The same planner restricted to each provider, region and SkyPilot's model (``--compare``).

    ``pipeline`` carries the output sizes the plan used (measured where the declared ones were far
    off), so the comparison's Stratus row is the plan just shown.
    """
    platform = workspace.platform
    gate = policy_gate(platform, workspace.platform_file.parent)
    try:
        return compare(
            pipeline, platform, workspace.catalog, objective, time_limit_s, gate.plan_policy(pipeline)
        )
    finally:
        gate.close()
