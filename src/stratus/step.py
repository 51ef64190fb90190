"""What a step function receives: its inputs and outputs as local files, and a place to work.

Step code never sees clouds, buckets or credentials: the executor fetches inputs to local paths before
the call and publishes the outputs after it, so the same function runs on any site.

The ``STRATUS_*`` environment a step's process receives is named here, at the bottom of the package, so
the runner that sets it, the executors and Kubernetes manifests that pass it on, and the training code
that reads it (:mod:`stratus.training.cluster` says what each value means) spell it once.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ENV_COORDINATOR",
    "ENV_RANK",
    "ENV_RUN_ID",
    "ENV_SITE",
    "ENV_SITES",
    "ENV_STEP",
    "ENV_TIMEOUT",
    "ENV_WORLD_SIZE",
    "StepContext",
]

#: Every step process: the run, the step and the site it runs at.
ENV_RUN_ID = "STRATUS_RUN_ID"
ENV_STEP = "STRATUS_STEP"
ENV_SITE = "STRATUS_SITE"
#: Each rank of a multi-site step: its rank, how many there are, where rank 0 listens (``host:port``),
#: the sites by rank (comma-separated), and the seconds a rendezvous or collective may take.
ENV_RANK = "STRATUS_RANK"
ENV_WORLD_SIZE = "STRATUS_WORLD_SIZE"
ENV_COORDINATOR = "STRATUS_COORDINATOR"
ENV_SITES = "STRATUS_SITES"
ENV_TIMEOUT = "STRATUS_DIST_TIMEOUT_S"


@dataclass(frozen=True)
class StepContext:
    """Inputs by reference (``"dataset:raw"``, ``"prep.features"``), outputs by name, params and a log."""

    step: str
    run_id: str
    inputs: Mapping[str, Path]
    outputs: Mapping[str, Path]
    workdir: Path
    params: Mapping[str, Any] = field(default_factory=dict)
    # Federated steps only: each participant site's own inputs (reference → local path). The step hands
    # each site's paths to that site's participant alone; nothing here is ever copied between sites.
    participants: Mapping[str, Mapping[str, Path]] = field(default_factory=dict)

    def input(self, name: str) -> Path:
        """The local path of an input, by full reference or by its last part (``features``, ``raw``)."""
        if name in self.inputs:
            return self.inputs[name]
        matches = [p for ref, p in self.inputs.items() if ref.split(":")[-1].split(".")[-1] == name]
        if len(matches) != 1:
            raise KeyError(
                f"step {self.step!r} has no single input named {name!r}; inputs: {', '.join(self.inputs)}"
            )
        return matches[0]

    def output(self, name: str) -> Path:
        """Where the step must write output ``name``; its folder exists."""
        path = self.outputs[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def log(self, message: str) -> None:
        """A line in the step's log, streamed by the runner."""
        print(f"[{self.step}] {message}", file=sys.stderr, flush=True)
