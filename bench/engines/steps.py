"""The benchmark's step functions: nothing to compute, so what is measured is the executor's overhead."""

from __future__ import annotations

import time
from typing import Any

from stratus.step import StepContext


def noop(ctx: StepContext) -> dict[str, Any]:
    """Return at once (writes its outputs, if any)."""
    for path in ctx.outputs.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(ctx.step)
    return {}


def pause(ctx: StepContext) -> dict[str, Any]:
    """Wait ``seconds`` (I/O-like work that leaves the CPU free), then write the outputs."""
    time.sleep(float(ctx.params.get("seconds", 1.0)))
    return noop(ctx)
