"""Residency: which jurisdictions every artifact is bound to, propagated along the data flow."""

from __future__ import annotations

from stratus.config import Pipeline, parse_input, step_dependencies, topological_order

__all__ = ["artifact_residency", "step_residency"]


def artifact_residency(pipeline: Pipeline) -> dict[str, frozenset[str]]:
    """Map ``dataset:NAME`` and ``STEP.OUTPUT`` to the jurisdictions the artifact may never leave.

    A dataset's ``residency`` flows to everything derived from it; a ``declassify: true`` step (one that
    emits only aggregates) and a federated step (whose data never moves) cut the chain. More than one
    jurisdiction means no site can hold it.
    """
    residency: dict[str, frozenset[str]] = {}
    for name, dataset in pipeline.datasets.items():
        residency[f"dataset:{name}"] = frozenset({dataset.residency}) if dataset.residency else frozenset()
    deps = step_dependencies({name: step.inputs for name, step in pipeline.steps.items()})
    for step_name in topological_order(deps):
        step = pipeline.steps[step_name]
        inherited = step_residency(step.inputs, residency)
        # Federated outputs are models trained where the data lies, not the data: like declassified ones.
        out = frozenset() if step.declassify or step.kind == "federated" else inherited
        for output in step.outputs:
            residency[f"{step_name}.{output}"] = out
    return residency


def step_residency(inputs: list[str], residency: dict[str, frozenset[str]]) -> frozenset[str]:
    """The union of the residencies of what a step reads: it may only run where all of them allow."""
    bound: frozenset[str] = frozenset()
    for ref in inputs:
        producer, item = parse_input(ref)
        key = f"dataset:{item}" if producer is None else ref
        bound |= residency.get(key, frozenset())
    return bound
