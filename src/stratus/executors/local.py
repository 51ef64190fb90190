"""``local``: each step is a subprocess on this machine, in its own working directory.

It stands in for a VM at any site in demos and tests, so it also accepts spot steps and can be told to
preempt one (:meth:`Handle.preempt`) to exercise the runner's failover.
"""

from __future__ import annotations

from stratus.executors.base import Handle, StepRequest, SupportsPreemption
from stratus.executors.process import Limits, start_worker

__all__ = ["LocalExecutor"]


class LocalExecutor(SupportsPreemption):
    """Runs steps as local processes; the only limit it enforces is the request's timeout."""

    name = "local"

    def __init__(self, site: str) -> None:
        self.site = site

    def submit(self, request: StepRequest) -> Handle:
        """Start the worker process and return its handle at once."""
        return start_worker(request, self.site, Limits(timeout_s=request.timeout_s))
