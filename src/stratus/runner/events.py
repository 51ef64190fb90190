"""What the runner tells whoever watches: step state changes, notes (retries, failovers), log lines.

Events are plain values so the CLI can draw a live table, a script can log them, and tests can assert
on exactly what a user would have been told.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["EventKind", "EventSink", "RunEvent", "StepState", "metrics_words"]

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


def metrics_words(metrics: Mapping[str, Any], limit: int | None = None) -> str:
    """A step's headline metrics as ``auc=0.9551, rows=300000``.

    Structured values (per-site exchange bytes and the like) are for the ledger, not the headline.
    """
    shown = [
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in metrics.items()
        if not isinstance(v, Mapping | list)
    ]
    return ", ".join(shown[:limit])
