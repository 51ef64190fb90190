"""``stratus plan``: place a pipeline on the platform's sites and show why."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from stratus.catalog import Catalog
from stratus.cli.output import console, print_json
from stratus.cli.render_plan import render_plan
from stratus.config import load_pipeline, load_platform, resolve_platform_path
from stratus.errors import ConfigError
from stratus.planner import plan
from stratus.state import state_dir

__all__ = ["plan_command"]


def plan_command(
    pipeline: Path = typer.Argument(..., help="The pipeline file (YAML).", show_default=False),
    platform: Path | None = typer.Option(
        None,
        "--platform",
        "-p",
        help="The platform file. Default: stratus.yaml beside the pipeline, then in the working directory.",
    ),
    objective: str = typer.Option(
        "cost",
        "--objective",
        "-o",
        help="cost: least compute + egress dollars. time: shortest makespan, ties broken by cost.",
    ),
    explain: bool = typer.Option(False, "--explain", help="Also show runners-up and every rejected site."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object for scripts."),
    time_limit: float = typer.Option(
        60.0,
        "--time-limit",
        min=0.1,
        help="Seconds the MILP may take on a DAG; past it the best plan found is shown with its proven gap.",
    ),
) -> None:
    """Place every step on the cheapest (or fastest) compliant site and offering.

    Example: stratus plan examples/fraud-detection/pipeline.yaml --explain

    Exit codes: 0 planned, 2 usage or config error, 3 infeasible (the message says what to relax).
    """
    goal = _objective(objective)
    if not pipeline.is_file():
        raise ConfigError("pipeline file not found; check the path", file=str(pipeline))
    platform_file = resolve_platform_path(platform, pipeline)
    platform_model = load_platform(platform_file)
    pipeline_model = load_pipeline(pipeline, platform_model)
    catalog = Catalog.load(state_dir(platform_file) / "catalog")
    result = plan(
        pipeline_model, platform_model, catalog, objective=goal, explain=explain, time_limit_s=time_limit
    )
    if as_json:
        print_json(result.to_json())
    else:
        render_plan(console(), result, explain=explain)


def _objective(value: str) -> Literal["cost", "time"]:
    if value == "cost":
        return "cost"
    if value == "time":
        return "time"
    raise typer.BadParameter(
        f"{value!r} is not an objective; expected 'cost' or 'time'", param_hint="--objective"
    )
