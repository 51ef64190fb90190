"""``serverless``: the local machinery with a function service's limits and prices.

A function gets a fixed memory size (at least the step's memory, and enough to buy its vCPUs, as on
Lambda), is killed past the site's duration limit, and is billed per GB-second of that memory plus a fee
per request, which is what makes short bursty steps cheaper here than on a VM billed by the hour.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from stratus.config import Resources, ServerlessSpec
from stratus.errors import ExecutorError
from stratus.executors.base import Executor, Handle, StepRequest
from stratus.executors.process import Limits, start_worker
from stratus.units import bytes_from_gb

__all__ = ["PricedPerUse", "ServerlessExecutor"]

_MS = Decimal("0.001")


class PricedPerUse(Executor):
    """Capability: the executor bills by use, so the runner asks it for a step's cost, not the hourly rate."""

    def cost_usd(self, resources: Resources, duration_s: float) -> Decimal:
        """What one invocation of ``duration_s`` seconds costs."""
        raise NotImplementedError


class ServerlessExecutor(PricedPerUse):
    """Function-service semantics on local processes: memory cap (RLIMIT_AS), duration cap, per-use price."""

    name = "serverless"

    def __init__(self, site: str, spec: ServerlessSpec) -> None:
        self.site = site
        self.spec = spec

    def memory_gb(self, resources: Resources) -> float:
        """The function size a step gets: its memory, or more if its vCPUs need it (as the planner prices)."""
        return max(resources.memory_gb, resources.cpus * self.spec.gb_per_vcpu)

    def submit(self, request: StepRequest) -> Handle:
        """Refuse a step larger than the site allows; otherwise start it under the memory and time caps."""
        memory = self.memory_gb(request.resources)
        if memory > self.spec.max_memory_gb:
            raise ExecutorError(
                f"needs a {memory:g} GB function but this site allows at most {self.spec.max_memory_gb:g} GB "
                "(compute.serverless.max_memory_gb); ask for less memory or run it on a VM site",
                step=request.step,
                site=self.site,
            )
        limit_s = self.spec.max_duration_s
        timeout = limit_s if request.timeout_s is None else min(request.timeout_s, limit_s)
        limits = Limits(
            memory_bytes=bytes_from_gb(memory),
            memory_hint=f" (the function size at site {self.site}; raise the step's resources.memory_gb, "
            f"up to compute.serverless.max_memory_gb = {self.spec.max_memory_gb:g})",
            timeout_s=timeout,
            timeout_hint=(
                f" (the function duration limit at site {self.site}: compute.serverless.max_duration_s)"
                if timeout == limit_s
                else ""
            ),
        )
        # glibc reserves 64 MB of address space per thread arena; two arenas keep RLIMIT_AS about memory.
        return start_worker(request, self.site, limits, {"MALLOC_ARENA_MAX": "2"})

    def cost_usd(self, resources: Resources, duration_s: float) -> Decimal:
        """GB-seconds (duration rounded up to the millisecond, as Lambda bills) × rate + the request fee."""
        seconds = Decimal(str(duration_s)).quantize(_MS, rounding=ROUND_CEILING)
        gb = Decimal(str(self.memory_gb(resources)))
        return self.spec.usd_per_gb_second * gb * seconds + self.spec.usd_per_request
