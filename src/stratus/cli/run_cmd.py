"""``stratus run``: plan, then execute the pipeline across its sites, resumably, and say what happened."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from stratus.cli.inputs import OBJECTIVE, PIPELINE, PLATFORM, load_files, parse_objective
from stratus.cli.output import console, print_json, stderr
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
) -> None:
    """Plan, then run every step on its site, in parallel up to each site's capacity.

    Steps whose code, params and inputs match an earlier success are reused, not rerun.

    A step's log lines are printed as they happen, prefixed [step@site] (on stderr with --json).

    Infrastructure failures retry with backoff; an error in a step's own code fails it at once, showing
    its log's last lines (unless the step sets retry_on_error: true). A preempted step moves to the
    next-best site; a site whose store does not answer (probed before the run) or that fails under a
    step is marked down for the run, and the remaining steps are re-planned on the healthy sites.

    Example: stratus run examples/fraud-detection/pipeline.yaml

    Exit codes: 0 the run succeeded, 1 it failed (resume it with --resume RUN_ID), 2 usage or config error.
    """
    goal = parse_objective(objective)
    platform_file, _, model = load_files(pipeline, platform)
    steps = [f"dataset:{name}" for name in model.datasets if model.datasets[name].make] + list(model.steps)
    out = stderr() if as_json else console()
    with Progress(out, steps) as progress:
        report = run_file(
            pipeline,
            platform_file,
            state_url_override=state_url,
            resume=resume,
            objective=goal,
            on_event=progress,
            repair=repair,
        )
    hint = f"stratus run {pipeline} --resume {report.run_id}"
    if as_json:
        print_json(report.to_json())
    else:
        render_report(out, report, hint)
    if not report.succeeded:
        if as_json:
            for step in report.steps:
                if step.status == "failed":
                    render_failure(stderr(), step)
            stderr().print(f"[bold red]failed:[/] {escape(report.error or '')}", soft_wrap=True)
        sys.exit(1)
