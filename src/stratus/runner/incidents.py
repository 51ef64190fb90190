"""What went wrong during a run and what the runner did about it, kept for the report and ``--json``.

Notes (``RunEvent("note")``) tell a person; these records tell a script: which sites were down and why,
which steps a re-plan moved where, and the class of each step's last failure.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from stratus.failures import ErrorClass
from stratus.state import utcnow

__all__ = ["Incidents", "Moved", "Replan", "SiteDown", "StepFailure"]


@dataclass(frozen=True)
class SiteDown:
    """A site marked down for the rest of the run: nothing more is placed there or sent to its store."""

    site: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class Moved:
    """One step a re-plan placed somewhere new (``from_site`` None: it had no placement yet)."""

    step: str
    from_site: str | None
    to_site: str


@dataclass(frozen=True)
class Replan:
    """A re-solve of the plan for every step not yet started, and why it happened."""

    cause: str
    moved: tuple[Moved, ...]
    at: datetime


@dataclass(frozen=True)
class StepFailure:
    """How a step's latest attempt failed: whose failure, in words, and where its log is."""

    error_class: ErrorClass
    error: str
    log_path: Path | None
    retried: bool


@dataclass
class Incidents:
    """The run's record of site outages, re-plans and step failures; safe to add to from any thread."""

    sites_down: list[SiteDown] = field(default_factory=list)
    replans: list[Replan] = field(default_factory=list)
    failures: dict[str, StepFailure] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def site_down(self, site: str, reason: str) -> bool:
        """Record ``site`` as down; False when it already was (the first reason is kept)."""
        with self._lock:
            if any(d.site == site for d in self.sites_down):
                return False
            self.sites_down.append(SiteDown(site, reason, utcnow()))
            return True

    def is_down(self, site: str) -> bool:
        """Whether ``site`` was marked down in this run."""
        with self._lock:
            return any(d.site == site for d in self.sites_down)

    def replanned(self, cause: str, moved: list[Moved]) -> None:
        """Record a re-plan."""
        with self._lock:
            self.replans.append(Replan(cause, tuple(moved), utcnow()))

    def failed(self, step: str, failure: StepFailure) -> None:
        """Record the latest failure of ``step`` (a later success clears it)."""
        with self._lock:
            self.failures[step] = failure

    def succeeded(self, step: str) -> None:
        """``step`` finished: an earlier failure is history, not its outcome."""
        with self._lock:
            self.failures.pop(step, None)
