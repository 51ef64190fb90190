"""``stratus plan``: place a pipeline on the platform's sites and show why."""

from __future__ import annotations

from pathlib import Path

import typer

from stratus.catalog import Catalog
from stratus.cli.inputs import OBJECTIVE, PIPELINE, PLATFORM, finite_flag, load_files, parse_objective
from stratus.cli.output import console, print_json
from stratus.cli.render_compare import render_comparison
from stratus.cli.render_plan import render_plan
from stratus.limits import MAX_FLAG_SECONDS
from stratus.planner import compare, plan
from stratus.policy import policy_gate
from stratus.state import state_dir

__all__ = ["plan_command"]


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
) -> None:
    """Place every step on the cheapest (or fastest) compliant site and offering.

    Example: stratus plan examples/fraud-detection/pipeline.yaml --explain

    With --compare, the same exact planner is re-run restricted to each provider, to each single region,
    and under SkyPilot's model, with spot on and off: what multi-cloud saves, and why.

    The platform's `policies:` judge every candidate; what they deny shows with --explain, and in the
    error when nothing is left for a step.

    Exit codes: 0 planned, 2 usage or config error, 3 infeasible (the message says what to relax).
    """
    goal = parse_objective(objective)
    platform_file, platform_model, pipeline_model = load_files(pipeline, platform)
    catalog = Catalog.load(state_dir(platform_file) / "catalog")
    gate = policy_gate(platform_model, platform_file.parent)
    comparison = None
    try:
        rule = gate.plan_policy(pipeline_model)
        result = plan(
            pipeline_model,
            platform_model,
            catalog,
            objective=goal,
            explain=explain,
            time_limit_s=time_limit,
            policy=rule,
        )
        if with_compare:
            comparison = compare(pipeline_model, platform_model, catalog, goal, time_limit, rule)
    finally:
        gate.close()
    if as_json:
        print_json(result.to_json() | ({"compare": comparison.to_json()} if comparison else {}))
        return
    render_plan(console(), result, explain=explain)
    if comparison is not None:
        render_comparison(console(), comparison)
