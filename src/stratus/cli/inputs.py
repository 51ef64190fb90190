"""The arguments every pipeline command shares, declared and checked once so `plan` and `run` agree."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

from stratus.config.env import PLATFORM_ENV
from stratus.errors import ConfigError
from stratus.workspace import Workspace

if TYPE_CHECKING:  # the loaders import pydantic and the catalog: only commands that parse files pay
    from stratus.config import Pipeline

__all__ = [
    "DEPLOYMENT",
    "JSON",
    "OBJECTIVE",
    "PIPELINE",
    "PLATFORM",
    "PLATFORM_ENV",
    "PLATFORM_HERE",
    "finite_flag",
    "load_files",
    "parse_objective",
    "workspace_here",
]

PIPELINE = typer.Argument(..., help="The pipeline file (YAML).", show_default=False)
PLATFORM = typer.Option(
    None,
    "--platform",
    "-p",
    envvar=PLATFORM_ENV,
    help="The platform file. Default: $STRATUS_PLATFORM, then stratus.yaml beside the pipeline, then in "
    "the working directory.",
)
# For commands with no pipeline argument: the platform file is looked for in the working directory only.
PLATFORM_HERE = typer.Option(
    None,
    "--platform",
    "-p",
    envvar=PLATFORM_ENV,
    help="The platform file. Default: $STRATUS_PLATFORM, then stratus.yaml in the working directory.",
)
JSON = typer.Option(False, "--json", help="Print exactly one JSON object for scripts.")
# The serving commands' and the drills' choice among the platform's deployments (.stratus/serve/NAME/).
DEPLOYMENT = typer.Option(
    None, "--name", help="The deployment (its model's name, or its --name). Default: the only one."
)
OBJECTIVE = typer.Option(
    "cost",
    "--objective",
    "-o",
    help="cost: least compute + egress dollars. time: shortest makespan, ties broken by cost.",
)


def parse_objective(value: str) -> Literal["cost", "time"]:
    """``cost`` or ``time``; anything else is a usage error (exit 2) that says what is expected."""
    if value == "cost":
        return "cost"
    if value == "time":
        return "time"
    raise typer.BadParameter(
        f"{value!r} is not an objective; expected 'cost' or 'time'", param_hint="--objective"
    )


def finite_flag(value: float) -> float:
    """A float flag's callback: click's ranges let ``nan`` through (every comparison with it is false)."""
    if not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number of seconds")
    return value


def load_files(
    pipeline: Path, platform: Path | None, state_url: str | None = None
) -> tuple[Workspace, Pipeline]:
    """The workspace of the platform file found for ``pipeline``, with both files parsed and checked
    against each other (once: the workspace keeps them for whatever the command does next)."""
    if not pipeline.exists():  # not is_file(): a FIFO or /dev/zero gets read_yaml's precise refusal
        raise ConfigError("pipeline file not found; check the path", file=str(pipeline))
    workspace = Workspace.find(platform, pipeline, state_url=state_url)
    return workspace, workspace.pipeline(pipeline)


def workspace_here(platform: Path | None, state_url: str | None = None) -> Workspace:
    """The workspace of a command with no pipeline: ``--platform``, ``$STRATUS_PLATFORM``, else
    ``stratus.yaml`` in the working directory. Nothing is parsed yet."""
    return Workspace.find(platform, state_url=state_url)
