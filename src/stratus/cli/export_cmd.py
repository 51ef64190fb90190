"""``stratus export``: a planned pipeline as another workflow engine's file (Kubeflow Pipelines, Argo).

Both commands plan the pipeline as ``stratus plan`` does, turn the plan into tasks
(:mod:`stratus.export.spec`), write the engine's file with the engine's own SDK, and list on stderr (and
in ``--json``) everything the engine cannot express (:mod:`stratus.export.gaps`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from stratus.cli.inputs import JSON, PIPELINE, PLATFORM, load_files
from stratus.cli.output import console, print_json, stderr
from stratus.export.gaps import Gap, find_gaps
from stratus.export.spec import ExportSpec, build_spec, parse_secret
from stratus.planner import plan
from stratus.policy import policy_gate

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Write a planned pipeline as another workflow engine's file; what it cannot express is listed.\n\n"
        "  stratus export kfp pipeline.yaml -o pipeline.yaml    Kubeflow Pipelines IR (kfp SDK)\n\n"
        "  stratus export argo pipeline.yaml -o workflow.yaml   an Argo Workflows Workflow (hera)"
    ),
    no_args_is_help=True,
)

_OUT = typer.Option(..., "--out", "-o", help="The file to write.")
_IMAGE = typer.Option(
    None,
    "--image",
    help="Image for tasks placed at sites with no compute.image (non-Kubernetes sites); "
    "a Kubernetes site's own image always wins.",
)
_SECRET = typer.Option(
    None,
    "--secret",
    help="SECRET:KEY=ENV: every step gets env ENV from key KEY of Kubernetes Secret SECRET (repeatable).",
)
_PLACEMENT = typer.Option(
    True,
    "--placement/--no-placement",
    help="Pin each task to its planned site's nodes (region label); --no-placement keeps only the "
    "accelerator and spot selectors, for a cluster in one region.",
)


def _export(
    pipeline: Path,
    platform: Path | None,
    image: str | None,
    secrets: list[str] | None,
    placement: bool,
    engine: str,
) -> tuple[ExportSpec, list[Gap]]:
    """Plan ``pipeline`` (its platform's catalog and policies, as ``stratus plan``) and build the tasks."""
    parsed = [parse_secret(s) for s in secrets or []]
    workspace, pipeline_model = load_files(pipeline, platform)
    platform_model = workspace.platform
    gate = policy_gate(platform_model, workspace.platform_file.parent)
    try:
        result = plan(
            pipeline_model, platform_model, workspace.catalog, policy=gate.plan_policy(pipeline_model)
        )
    finally:
        gate.close()
    spec = build_spec(
        pipeline_model, platform_model, result, image=image, secrets=parsed, placement=placement
    )
    return spec, find_gaps(pipeline_model, platform_model, result, engine)


def _report(target: str, engine: str, out: Path, spec: ExportSpec, gaps: list[Gap], as_json: bool) -> None:
    size = out.stat().st_size
    if gaps:
        stderr().print(f"not expressed in {escape(engine)} ({len(gaps)}):")
        for gap in gaps:
            stderr().print(f"  - {escape(gap.line())}", soft_wrap=True)
    if as_json:
        payload: dict[str, Any] = {
            "target": target,
            "pipeline": spec.name,
            "file": str(out),
            "bytes": size,
            "tasks": [
                {"name": t.name, "step": t.ref, "site": t.site, "image": t.image, "after": list(t.after)}
                for t in spec.tasks
            ],
            "dataset_inputs": list(spec.dataset_inputs),
            "not_expressed": [g.to_json() for g in gaps],
        }
        print_json(payload)
        return
    edges = sum(len(t.after) for t in spec.tasks)
    console().print(
        f"wrote {escape(str(out))} ({size} bytes): {len(spec.tasks)} tasks, {edges} edges, "
        f"{len(gaps)} things not expressed (listed on stderr)"
    )


def _command(target: str, engine: str, write: Callable[[ExportSpec, Path], None]) -> Callable[..., None]:
    def command(
        pipeline: Path = PIPELINE,
        out: Path = _OUT,
        platform: Path | None = PLATFORM,
        image: str | None = _IMAGE,
        secret: list[str] | None = _SECRET,
        placement: bool = _PLACEMENT,
        as_json: bool = JSON,
    ) -> None:
        spec, gaps = _export(pipeline, platform, image, secret, placement, engine)
        write(spec, out)
        _report(target, engine, out, spec, gaps, as_json)

    return command


def _write_kfp(spec: ExportSpec, out: Path) -> None:
    from stratus.export.to_kfp import compile_kfp

    compile_kfp(spec, out)


def _write_argo(spec: ExportSpec, out: Path) -> None:
    from stratus.export.to_argo import build_workflow

    text = build_workflow(spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


app.command(
    "kfp",
    help="Compile the planned pipeline with the Kubeflow Pipelines SDK to its IR YAML "
    "(needs stratus\\[kfp]).\n\n"
    "Example: stratus export kfp examples/fraud-detection/pipeline.yaml -o pipeline.yaml "
    "--image registry.example.com/stratus/fraud:0.1.0",
)(_command("kfp", "Kubeflow Pipelines", _write_kfp))
app.command(
    "argo",
    help="Write the planned pipeline as an Argo Workflows Workflow, built and checked with hera "
    "(needs stratus\\[argo]).\n\n"
    "Example: stratus export argo examples/fraud-detection/pipeline.yaml -o workflow.yaml "
    "--image registry.example.com/stratus/fraud:0.1.0",
)(_command("argo", "Argo Workflows", _write_argo))
