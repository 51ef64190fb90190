"""Inputs brought to the site that reads them, and the request a step's executor receives."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from stratus.executors import StepRequest
from stratus.runner.context import RunContext
from stratus.runner.events import RunEvent
from stratus.step import ENV_RUN_ID, ENV_SITE, ENV_STEP

__all__ = ["stage_inputs", "step_request"]


def stage_inputs(
    ctx: RunContext, step: str, site: str, inputs: Mapping[str, str], folder: Path
) -> dict[str, Path]:
    """Make ``site``'s store hold every input (copied from the cheapest holder), then fetch them locally.

    A corrupt replica at ``site`` is replaced from a verified one elsewhere, and the run says so.
    Residency is enforced on every copy, so no caller can move bound data out of its jurisdiction.
    """
    local: dict[str, Path] = {}
    for ref, sha in inputs.items():
        local[ref] = ctx.data.stage(
            sha,
            site,
            folder / ref.replace(":", "-"),
            artifact=ref,
            step=step,
            reason=f"input of {step}",
            residency=ctx.residency.get(ref, frozenset()),
            note=lambda message: ctx.emit(RunEvent("note", message, step=step, site=site)),
        )
    return local


def step_request(
    ctx: RunContext,
    step: str,
    site: str,
    workdir: Path,
    inputs: Mapping[str, Path],
    env: Mapping[str, str] | None = None,
    participants: Mapping[str, Mapping[str, Path]] | None = None,
) -> StepRequest:
    """The request for one process of ``step`` at ``site``, working in ``workdir``."""
    spec = ctx.pipeline.steps[step]
    return StepRequest(
        run_id=ctx.run_id,
        step=step,
        entrypoint=spec.run,
        inputs=inputs,
        outputs={out: workdir / "outputs" / out for out in spec.outputs},
        workdir=workdir,
        env={ENV_RUN_ID: ctx.run_id, ENV_STEP: step, ENV_SITE: site, **(env or {})},
        resources=spec.resources,
        python_path=[ctx.pipeline_dir],
        params=spec.params,
        participants=participants or {},
    )
