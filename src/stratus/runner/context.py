"""Everything one run carries around: its id, config, open stores, executors, state and event sink.

Built once by :func:`stratus.runner.run` and passed down, so nothing below reads globals or the
environment on its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from stratus.config import Pipeline, Platform
from stratus.executors import Executor, executor_for
from stratus.policy import NO_POLICY, PolicyGate
from stratus.redact import redact
from stratus.runner.billing import Biller
from stratus.runner.dataplane import DataPlane
from stratus.runner.events import EventSink, RunEvent
from stratus.runner.incidents import Incidents
from stratus.runner.placement import Placer
from stratus.site_stores import SiteStores
from stratus.state import Repository

__all__ = ["Faults", "RetryPolicy", "RunContext", "Sites", "open_sites"]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between attempts of a failing step: ``first_s``, ×``factor``, at most ``max_s``."""

    first_s: float = 1.0
    factor: float = 2.0
    max_s: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds to wait before the attempt that follows the ``failures``-th failure."""
        return float(min(self.max_s, self.first_s * self.factor ** max(0, failures - 1)))


@dataclass(frozen=True)
class Faults:
    """Injected failures, for tests and drills: ``preempt[step] = n`` reclaims its first n attempts."""

    preempt: Mapping[str, int] = field(default_factory=dict)


@dataclass
class Sites:
    """Every site's object store (opened on first use) and executor, and how many steps each runs at once."""

    stores: SiteStores
    executors: dict[str, Executor]
    slots: dict[str, int]


def open_sites(platform: Platform, base_dir: Path) -> Sites:
    """Every site's store (opened lazily) and executor."""
    stores = SiteStores(platform, base_dir)
    executors = {name: executor_for(name, site) for name, site in platform.sites.items()}
    default = os.cpu_count() or 1
    slots = {
        name: site.compute.capacity.max_parallel_steps or default for name, site in platform.sites.items()
    }
    return Sites(stores, executors, slots)


@dataclass
class RunContext:
    """One run's world. ``emit`` is safe to call from any thread (events are serialised)."""

    run_id: str
    pipeline: Pipeline
    pipeline_dir: Path
    platform: Platform
    repo: Repository
    sites: Sites
    placer: Placer
    biller: Biller
    data: DataPlane
    runs_dir: Path
    residency: dict[str, frozenset[str]]
    sink: EventSink | None = None
    faults: Faults = field(default_factory=Faults)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    policy: PolicyGate = NO_POLICY  # asked before each step starts and each copy (docs/policy.md)
    stop: threading.Event = field(default_factory=threading.Event)
    notes: list[str] = field(default_factory=list)
    incidents: Incidents = field(default_factory=Incidents)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def emit(self, event: RunEvent) -> None:
        """Deliver an event to the sink, one at a time; notes are also kept for the report."""
        event = replace(event, message=redact(event.message))  # errors and vendor text reach every sink
        with self._lock:
            if event.kind == "note":
                self.notes.append(event.message)
            if self.sink is not None:
                self.sink(event)

    def workdir(self, step: str, attempt: int) -> Path:
        """A fresh folder per attempt, so a retry never sees a failed attempt's partial outputs."""
        return self.runs_dir / self.run_id / step.replace(":", "-") / f"attempt-{attempt}"
