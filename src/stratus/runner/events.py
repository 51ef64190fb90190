"""What the runner tells whoever watches: step state changes, notes (retries, failovers), log lines.

Events are plain values so the CLI can draw a live table, a script can log them, and tests can assert
on exactly what a user would have been told.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["EventKind", "EventSink", "RunEvent", "StepState"]

EventKind = Literal["run", "step", "note", "log"]
StepState = Literal[
    "pending",
    "waiting",
    "making",
    "staging",
    "running",
    "publishing",
    "succeeded",
    "cached",
    "failed",
    "preempted",
    "retrying",
    "cancelled",
]


@dataclass(frozen=True)
class RunEvent:
    """One thing that happened. ``run``: the run started or ended; ``step``: a step changed state;
    ``note``: something a user should read (retry, failover, cache reuse); ``log``: a line of step output.
    """

    kind: EventKind
    message: str
    step: str | None = None
    state: StepState | None = None
    site: str | None = None
    attempt: int | None = None
    at: float = field(default_factory=time.time)


EventSink = Callable[[RunEvent], None]
