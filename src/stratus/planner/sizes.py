"""Which size the planner prices each step output at: the declared estimate, or the last measured one.

A pipeline declares ``size_gb`` before anything ran, and estimates are often off by orders of magnitude
(the demo declares 1.5 GB for 34 MB). When the last run of the same pipeline measured an output more
than :data:`FAR_OFF_FACTOR` times larger or smaller than declared, the planner prices the measured size
instead and says so (``stratus plan`` output, ``--explain`` and ``--json``); the run report lists the
same outputs so the user can fix the file. Estimates within the factor, and outputs never measured or
declared 0 (undeclared), keep the declared size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from stratus.config import OutputSpec, Pipeline
from stratus.units import BYTES_PER_GB

__all__ = ["FAR_OFF_FACTOR", "Measurement", "SizeEstimate", "choose_sizes", "far_off", "with_sizes"]

#: How far (either way) a declared size may be from the measured one before it is called wrong.
FAR_OFF_FACTOR = 10.0


class Measurement(Protocol):
    """What the planner needs of a measured output: its bytes and the run that measured it."""

    @property
    def size_bytes(self) -> int: ...

    @property
    def run_id(self) -> str: ...


@dataclass(frozen=True)
class SizeEstimate:
    """One step output's declared size, its last measured size (if any), and which the plan used."""

    artifact: str
    declared_gb: float
    measured_gb: float | None
    measured_run: str | None
    used: Literal["declared", "measured"]

    @property
    def used_gb(self) -> float:
        """The size the plan priced."""
        return (
            self.measured_gb if self.used == "measured" and self.measured_gb is not None else self.declared_gb
        )

    def to_json(self) -> dict[str, object]:
        """``{"artifact", "declared_gb", "measured_gb", "measured_run", "used", "used_gb"}``."""
        return {
            "artifact": self.artifact,
            "declared_gb": self.declared_gb,
            "measured_gb": self.measured_gb,
            "measured_run": self.measured_run,
            "used": self.used,
            "used_gb": self.used_gb,
        }


def far_off(declared_gb: float, size_bytes: int) -> bool:
    """True when a declared (non-zero) size is more than FAR_OFF_FACTOR× from the measured bytes."""
    measured_gb = size_bytes / BYTES_PER_GB
    if declared_gb <= 0:
        return False  # undeclared: nothing to correct
    if measured_gb <= 0:
        return True  # declared something, wrote nothing
    ratio = declared_gb / measured_gb
    return ratio > FAR_OFF_FACTOR or ratio < 1 / FAR_OFF_FACTOR


def choose_sizes(pipeline: Pipeline, measured: Mapping[str, Measurement]) -> tuple[SizeEstimate, ...]:
    """For every step output, the size to plan with: measured when the declared one is far off."""
    chosen: list[SizeEstimate] = []
    for step_name, step in pipeline.steps.items():
        for output, spec in step.outputs.items():
            ref = f"{step_name}.{output}"
            seen = measured.get(ref)
            if seen is None:
                chosen.append(SizeEstimate(ref, spec.size_gb, None, None, "declared"))
                continue
            used: Literal["declared", "measured"] = (
                "measured" if far_off(spec.size_gb, seen.size_bytes) else "declared"
            )
            chosen.append(SizeEstimate(ref, spec.size_gb, seen.size_bytes / BYTES_PER_GB, seen.run_id, used))
    return tuple(chosen)


def with_sizes(pipeline: Pipeline, sizes: tuple[SizeEstimate, ...]) -> Pipeline:
    """The pipeline with each output's ``size_gb`` replaced by the size the plan uses."""
    replaced = {s.artifact: s.used_gb for s in sizes if s.used == "measured"}
    if not replaced:
        return pipeline
    steps = {}
    for name, step in pipeline.steps.items():
        outputs = {
            output: OutputSpec(size_gb=replaced.get(f"{name}.{output}", spec.size_gb))
            for output, spec in step.outputs.items()
        }
        steps[name] = step.model_copy(update={"outputs": outputs})
    return pipeline.model_copy(update={"steps": steps})
