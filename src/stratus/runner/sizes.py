"""Declared output sizes against what a run measured: the report's list and the plan's note.

Transfer and storage costs are only as good as ``size_gb``; the run tells the user which estimates are
more than FAR_OFF_FACTOR× off, with the measured size, so the pipeline file can be fixed (the next plan
uses the measured size meanwhile, and says so).
"""

from __future__ import annotations

from stratus.config import Pipeline
from stratus.planner import SizeEstimate
from stratus.planner.sizes import choose_sizes
from stratus.state import Database, last_output_sizes
from stratus.units import BYTES_PER_GB, format_gb

__all__ = ["far_off_sizes", "measured_size_note", "size_words"]


def far_off_sizes(pipeline: Pipeline, db: Database, run_id: str) -> tuple[SizeEstimate, ...]:
    """The outputs this run produced (or reused) whose declared size is far from their real size."""
    mine = {ref: m for ref, m in last_output_sizes(db, pipeline.name).items() if m.run_id == run_id}
    return tuple(s for s in choose_sizes(pipeline, mine) if s.used == "measured")


def size_words(estimate: SizeEstimate) -> str:
    """``ingest.transactions: declared 1.5 GB, measured 0.0336 GB (44.6x smaller)``."""
    measured = estimate.measured_gb or 0.0
    text = (
        f"{estimate.artifact}: declared {estimate.declared_gb:g} GB, "
        f"measured {format_gb(round(measured * BYTES_PER_GB))}"
    )
    if measured > 0:
        ratio = estimate.declared_gb / measured
        text += f" ({ratio:.3g}x smaller)" if ratio > 1 else f" ({1 / ratio:.3g}x larger)"
    return text


def measured_size_note(estimate: SizeEstimate) -> str:
    """What the plan did with a far-off estimate, for the run's notes."""
    used = format_gb(round(estimate.used_gb * BYTES_PER_GB))
    return (
        f"planned {estimate.artifact} at its measured size {used} "
        f"(run {estimate.measured_run}), not the declared {estimate.declared_gb:g} GB"
    )
