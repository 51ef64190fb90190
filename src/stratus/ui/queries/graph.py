"""A run's step graph, read from the pipeline file the run recorded: datasets and steps, and who reads what.

Only ``datasets`` and each step's ``inputs`` are read, without validating the rest: the file may have
changed since the run (or be gone), and the dashboard must still show the run. When it cannot be read the
graph has the manifest's steps and no edges, and says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stratus.config.graph import parse_input
from stratus.config.source import read_yaml
from stratus.errors import StratusError

__all__ = ["Edge", "PipelineGraph", "read_graph"]


@dataclass(frozen=True)
class Edge:
    """``source`` (a step, or ``dataset:NAME``) produces ``artifact`` that step ``target`` reads."""

    source: str
    target: str
    artifact: str


@dataclass(frozen=True)
class PipelineGraph:
    """Nodes in the file's order (datasets first, as ``dataset:NAME``), edges, and why it is partial."""

    datasets: tuple[str, ...]
    steps: tuple[str, ...]
    edges: tuple[Edge, ...]
    problem: str | None = None
    dataset_sites: Mapping[str, str] = field(default_factory=dict)  # dataset name → the site holding it

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node: ``dataset:NAME`` for datasets, the step's name for steps."""
        return (*self.datasets, *self.steps)


def read_graph(pipeline_file: str, known_steps: Sequence[str] = ()) -> PipelineGraph:
    """The graph of ``pipeline_file``; ``known_steps`` (from the manifest) are added when missing from it."""
    try:
        data = read_yaml(Path(pipeline_file)).data if pipeline_file else None
    except (StratusError, OSError) as exc:
        return PipelineGraph((), tuple(known_steps), (), f"the pipeline file cannot be read: {exc}")
    if data is None:
        return PipelineGraph((), tuple(known_steps), (), "the run recorded no pipeline file")
    datasets = data.get("datasets") if isinstance(data.get("datasets"), dict) else {}
    steps = data.get("steps") if isinstance(data.get("steps"), dict) else {}
    names = list(dict.fromkeys([*(str(s) for s in steps), *known_steps]))
    edges: list[Edge] = []
    used: dict[str, None] = {}
    for step, spec in steps.items():
        inputs = spec.get("inputs") if isinstance(spec, dict) else None
        for ref in inputs if isinstance(inputs, list) else []:
            if not isinstance(ref, str) or ("." not in ref and not ref.startswith("dataset:")):
                continue
            producer, _ = parse_input(ref)
            source = producer if producer is not None else ref
            if producer is None:
                used[ref] = None
            edges.append(Edge(source, str(step), ref))
    dataset_nodes = [f"dataset:{d}" for d in datasets]
    dataset_nodes += [d for d in used if d not in dataset_nodes]
    known = {*dataset_nodes, *names}
    kept = tuple(e for e in edges if e.source in known and e.target in known)
    sites = {
        str(name): str(spec["site"])
        for name, spec in datasets.items()
        if isinstance(spec, dict) and isinstance(spec.get("site"), str)
    }
    return PipelineGraph(tuple(dataset_nodes), tuple(names), kept, dataset_sites=sites)
