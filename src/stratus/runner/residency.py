"""Residency at run time: the pipeline's bound for a reference, tightened by what the manifest knows.

The planner derives each reference's bound from the pipeline alone; the manifest knows the bytes. The
same bytes can be two artifacts (an EU dataset, and a declassified "aggregate" that is really a copy of
it), so every copy and publish uses the strictest bound of both, and a step that cuts the residency chain
(``declassify: true``, or federated) may not emit its resident inputs' bytes unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stratus.state import Repository
from stratus.storage import parse_residency, strictest

if TYPE_CHECKING:  # the context holds the data plane, which uses this module
    from stratus.runner.context import RunContext

__all__ = ["manifest_bound", "resident_inputs"]


def manifest_bound(repo: Repository, sha256: str) -> frozenset[str]:
    """The residency the manifest records for these bytes (the strictest of every artifact with them)."""
    row = repo.artifact(sha256)
    return parse_residency(row.residency) if row is not None else frozenset()


def resident_inputs(ctx: RunContext, step: str, inputs: Mapping[str, str]) -> dict[str, str]:
    """Input hash → reference, for each input whose residency the step's outputs do not carry.

    Empty for an ordinary step (its outputs inherit every input's bound); for a declassifying or
    federated step, the inputs whose bytes it must not publish unchanged as its own outputs.
    """
    outputs = ctx.pipeline.steps[step].outputs
    carried = strictest(*(ctx.residency.get(f"{step}.{out}", frozenset()) for out in outputs))
    found: dict[str, str] = {}
    for ref, sha in inputs.items():
        if not sha:
            continue
        bound = strictest(ctx.residency.get(ref, frozenset()), manifest_bound(ctx.repo, sha))
        if bound and not bound <= carried:
            found[sha] = f"{ref} ({'/'.join(sorted(bound))}-resident)"
    return found
