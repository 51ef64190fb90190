"""The arguments every pipeline command shares, declared and checked once so `plan` and `run` agree."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

from stratus.config.env import PLATFORM_ENV
from stratus.config.locate import resolve_platform_path
from stratus.errors import ConfigError

if TYPE_CHECKING:  # the loaders import pydantic and the catalog: only commands that parse files pay
    from stratus.config import Pipeline, Platform

__all__ = [
    "JSON",
    "OBJECTIVE",
    "PIPELINE",
    "PLATFORM",
    "PLATFORM_ENV",
    "PLATFORM_HERE",
    "finite_flag",
    "load_files",
    "parse_objective",
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


def load_files(pipeline: Path, platform: Path | None) -> tuple[Path, Platform, Pipeline]:
    """The platform file found for ``pipeline``, and both files parsed and checked against each other."""
    from stratus.config import load_pipeline, load_platform

    if not pipeline.exists():  # not is_file(): a FIFO or /dev/zero gets read_yaml's precise refusal
        raise ConfigError("pipeline file not found; check the path", file=str(pipeline))
    platform_file = resolve_platform_path(platform, pipeline)
    platform_model = load_platform(platform_file)
    return platform_file, platform_model, load_pipeline(pipeline, platform_model)
