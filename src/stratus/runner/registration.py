"""Registering a step's ONNX output in the model registry, with the lineage that makes it accountable.

The lineage says which run and step made the model, on which sites, from exactly which input bytes (their
SHA-256 in the sites' content-addressed stores), with which metrics, and what the run had cost so far.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from stratus.ledger import report
from stratus.registry import Lineage, Registry
from stratus.runner.context import RunContext

__all__ = ["register_output"]


def register_output(
    ctx: RunContext,
    step: str,
    sites: list[str],
    inputs: Mapping[str, str],
    outputs: Mapping[str, Path],
    metrics: Mapping[str, Any],
) -> str:
    """Register the step's declared output; returns what to tell the user (``fraud v3 (champion)``)."""
    spec = ctx.pipeline.steps[step].registration
    assert spec is not None
    output = spec.output or next(iter(outputs))
    lineage = Lineage(
        run_id=ctx.run_id,
        step=step,
        sites=tuple(sites),
        inputs=dict(inputs),
        metrics={
            k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
        },
        cost_usd=_run_cost(ctx),
        pipeline=ctx.pipeline.name,
        tags=dict(ctx.pipeline.tags),
    )
    tracking_uri = ctx.platform.registry.tracking_uri if ctx.platform.registry else None
    registry = Registry.open(tracking_uri, ctx.runs_dir.parent)
    path = outputs[output]
    if path.suffix != ".onnx":  # outputs are named by the pipeline, the registry wants an .onnx file
        named = path.parent / ".register" / f"{spec.model}.onnx"
        named.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, named)
        path = named
    version = registry.register(spec.model, path, lineage, spec.aliases)
    aliases = f" ({', '.join(spec.aliases)})" if spec.aliases else ""
    return f"registered {spec.model} v{version.version}{aliases}"


def _run_cost(ctx: RunContext) -> Decimal:
    """What the run has been charged so far (compute and transfers; storage is charged at its end)."""
    return sum(
        (row.actual_usd for row in report(ctx.repo.db, by=("site",), run_id=ctx.run_id).rows), Decimal(0)
    )
