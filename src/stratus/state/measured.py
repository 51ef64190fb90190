"""The last measured size of each step output of a pipeline, for the planner and the run report.

A pipeline declares ``outputs: {name: {size_gb: ...}}`` before anything ran; once a run has produced
the artifact its real size is in the manifest. The planner may use that instead of an estimate that is
far off, and says so (:mod:`stratus.planner.sizes`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from stratus.state.db import Database
from stratus.state.models import ArtifactName, ArtifactRow, RunRow

__all__ = ["MeasuredSize", "last_output_sizes"]


@dataclass(frozen=True)
class MeasuredSize:
    """The bytes an output had when run ``run_id`` last produced or reused it."""

    size_bytes: int
    run_id: str


def last_output_sizes(db: Database, pipeline: str) -> dict[str, MeasuredSize]:
    """``{"step.output": MeasuredSize}`` from the newest run of ``pipeline`` that named each output.

    Datasets (``dataset:NAME``) are left out: their size is the user's data, declared, not estimated.
    """
    query = (
        select(ArtifactName.ref, ArtifactRow.size_bytes, RunRow.id)
        .join(RunRow, RunRow.id == ArtifactName.run_id)
        .join(ArtifactRow, ArtifactRow.sha256 == ArtifactName.sha256)
        .where(RunRow.pipeline == pipeline)
        .order_by(RunRow.created_at.desc(), RunRow.id.desc())
    )
    found: dict[str, MeasuredSize] = {}
    with db.session() as session:
        for ref, size, run_id in session.execute(query):
            if not ref.startswith("dataset:") and ref not in found:
                found[ref] = MeasuredSize(int(size), run_id)
    return found
