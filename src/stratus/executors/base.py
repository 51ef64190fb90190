"""The one narrow interface every executor implements: submit a step, stream its logs, learn how it ended.

The runner only ever sees :class:`StepRequest` going in and :class:`StepResult` coming out, so a
Kubernetes executor (a later issue) slots in beside ``local`` and ``serverless`` without the runner
changing. Capabilities are types (:class:`SupportsPreemption`), not string flags.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stratus.config import Resources
from stratus.errors import ExecutorError
from stratus.failures import ErrorClass, FailureKind, classify_failure

__all__ = [
    "Executor",
    "FailureKind",
    "Handle",
    "StepRequest",
    "StepResult",
    "SupportsGangs",
    "SupportsPreemption",
    "SupportsProbe",
]


@dataclass(frozen=True)
class StepRequest:
    """Everything a step needs, already local: the executor never talks to object stores."""

    run_id: str
    step: str
    entrypoint: str  # "module:function"
    inputs: Mapping[str, Path]  # input ref ("dataset:raw", "prep.features") → local file or folder
    outputs: Mapping[str, Path]  # output name → local path the step must write
    workdir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    resources: Resources = field(default_factory=Resources)
    python_path: Sequence[Path] = ()  # folders put first on sys.path (the pipeline's folder)
    params: Mapping[str, Any] = field(default_factory=dict)
    participants: Mapping[str, Mapping[str, Path]] = field(default_factory=dict)  # federated: site → inputs


@dataclass(frozen=True)
class StepResult:
    """How a step ended. ``exit_code`` follows Python: negative means killed by that signal."""

    exit_code: int
    duration_s: float
    peak_memory_bytes: int
    metrics: Mapping[str, Any]
    preempted: bool = False
    log_path: Path | None = None
    failure: FailureKind | None = None
    error: str | None = None  # what went wrong, in words a user can act on

    @property
    def ok(self) -> bool:
        """The step returned normally and wrote every output."""
        return self.failure is None and self.exit_code == 0

    @property
    def error_class(self) -> ErrorClass | None:
        """Whose failure it was (see :mod:`stratus.failures`); None when the step succeeded."""
        if self.ok:
            return None
        return classify_failure(self.failure or "crashed")

    def raise_for_failure(self, step: str, site: str) -> None:
        """Raise ExecutorError naming the step, site, cause and log when the step did not succeed."""
        if self.ok:
            return
        log = f" (log: {self.log_path})" if self.log_path else ""
        what = self.error or f"exited with code {self.exit_code}"
        raise ExecutorError(f"{what}{log}", step=step, site=site)


class Handle(ABC):
    """A submitted step: wait for it, read its log as it grows, stop it."""

    log_path: Path

    @abstractmethod
    def wait(self, timeout: float | None = None) -> StepResult | None:
        """The result once the step has ended; None if ``timeout`` seconds pass first."""

    @abstractmethod
    def logs(self) -> Iterator[str]:
        """The log's lines, following the file until the step ends (like ``tail -f``)."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop the step; its result reports ``failure="cancelled"``."""

    @abstractmethod
    def preempt(self) -> None:
        """Kill the step as a spot reclaim would; its result reports ``preempted=True``."""


class Executor(ABC):
    """Runs steps for one site. ``submit`` is non-blocking and raises ExecutorError when it cannot start."""

    name: str
    site: str

    @abstractmethod
    def submit(self, request: StepRequest) -> Handle:
        """Start the step and return at once."""


class SupportsPreemption(Executor, ABC):
    """An executor whose steps may be reclaimed mid-run (spot); the runner then fails over to another site."""


class SupportsProbe(Executor, ABC):
    """An executor whose compute sits behind an address (a cluster's API) that may not answer.

    The runner probes it at plan time for every site the plan runs steps at, so a wrong or dead address
    is a clear error before anything runs, not a failure in the middle of the run.
    """

    address: str

    @abstractmethod
    def probe(self, timeout_s: float) -> str | None:
        """None when the compute answers within ``timeout_s``; else why not, naming the address."""


class SupportsGangs(Executor, ABC):
    """An executor that starts all ranks of a distributed step together, as one unit (a Ray job holding
    a placement group), when every rank is at its site; ranks across sites are submitted one by one."""

    @abstractmethod
    def submit_gang(self, requests: Sequence[StepRequest]) -> list[Handle]:
        """Start every rank's request at once; one handle per request, in the same order."""
