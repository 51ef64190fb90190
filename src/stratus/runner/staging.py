"""Inputs brought to the site that reads them, and the request a step's executor receives."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from stratus.config import Resources, parse_input
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
    """The request for one process of ``step`` at ``site``, working in ``workdir``.

    Step ``dataset:NAME`` is making that dataset: its ``make:`` function, its params, and one output
    named after the dataset, on the site's default resources.
    """
    if step in ctx.pipeline.steps:
        spec = ctx.pipeline.steps[step]
        entrypoint, outputs, resources, params = spec.run, list(spec.outputs), spec.resources, spec.params
    else:
        _, name = parse_input(step)
        dataset = ctx.pipeline.datasets[name]
        assert dataset.make is not None, f"dataset {name!r} has no make: and is never made"
        entrypoint, outputs, resources, params = dataset.make, [name], Resources(), dataset.params
    return StepRequest(
        run_id=ctx.run_id,
        step=step,
        entrypoint=entrypoint,
        inputs=inputs,
        outputs={out: workdir / "outputs" / out for out in outputs},
        workdir=workdir,
        env={ENV_RUN_ID: ctx.run_id, ENV_STEP: step, ENV_SITE: site, **(env or {})},
        resources=resources,
        python_path=[ctx.pipeline_dir],
        params=params,
        participants=participants or {},
    )
