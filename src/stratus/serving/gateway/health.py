"""What the gateway knows about each site, and the active health checks that keep it current.

A site is *routable* when active checks say it is healthy, passive outlier detection has not ejected it,
and an operator has not drained it. The two kinds of checks complement each other: active checks find a
dead or draining site within ``unhealthy_threshold`` intervals even with no traffic; passive detection
reacts within a few failed requests, faster than any check interval under load.

:class:`SiteState` is plain logic on an injected clock (unit-testable without sleeping);
:class:`HealthChecker` is the asyncio loop that feeds it check results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from stratus.serving.gateway.config import HealthCheck, OutlierDetection, Upstream
from stratus.serving.gateway.upstream import ConnectionPool, UpstreamError

__all__ = ["EWMA_ALPHA", "HealthChecker", "SiteState"]

log = logging.getLogger("stratus.gateway")

# Weight of the newest latency sample: ~0.3 follows a change within a handful of requests without
# letting one slow request reorder the sites.
EWMA_ALPHA = 0.3


class SiteState:
    """Health, ejection, drain, latency and counters of one site; every method takes ``now`` as given."""

    def __init__(
        self,
        upstream: Upstream,
        health: HealthCheck,
        outlier: OutlierDetection,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.name = upstream.name
        self.site = upstream.site_name  # replicas of one site share it (``x-stratus-site``, policies)
        self.health = health
        self.outlier = outlier
        self.clock = clock
        # Active checks. A site starts unhealthy until its first check passes (the gateway runs one round
        # before it accepts traffic).
        self.healthy = False
        self.checked = False
        self.check_successes = 0
        self.check_failures = 0
        self.last_check_ms: float | None = None
        self.last_check_at: float | None = None
        self.last_check_error: str | None = None
        # Passive outlier detection.
        self.consecutive_errors = 0
        self.ejected_until = 0.0
        self.ejection_streak = 0
        self.last_error: str | None = None
        # Operator.
        self.drained = False
        # Observed latency and totals (what the admin API reports).
        self.ewma_s: float | None = None
        self.requests = 0
        self.failures = 0
        self.retries = 0
        self.ejections = 0

    # -- routing ------------------------------------------------------------------------------------

    def routable(self, now: float) -> bool:
        """Whether new requests may go here: healthy, not ejected, not drained."""
        return self.healthy and not self.drained and now >= self.ejected_until

    def state(self, now: float) -> str:
        """One of ``drained``, ``ejected``, ``unhealthy``, ``healthy`` (in that precedence)."""
        if self.drained:
            return "drained"
        if now < self.ejected_until:
            return "ejected"
        return "healthy" if self.healthy else "unhealthy"

    def reason(self, now: float) -> str:
        """Why the site is not routable, for the 503 a client gets when no site is."""
        if self.drained:
            return "drained by an operator"
        if now < self.ejected_until:
            return f"ejected {self.ejected_until - now:.1f} s more after errors ({self.last_error})"
        if not self.checked:
            return "not checked yet"
        if not self.healthy:
            detail = f" ({self.last_check_error})" if self.last_check_error else ""
            return f"failing health checks{detail}"
        return "healthy"

    # -- passive outlier detection ------------------------------------------------------------------

    def on_success(self, latency_s: float) -> None:
        """An attempt got a non-5xx answer: the error streak ends and the latency feeds the EWMA."""
        self.consecutive_errors = 0
        ewma = self.ewma_s
        self.ewma_s = latency_s if ewma is None else ewma + EWMA_ALPHA * (latency_s - ewma)

    def on_failure(self, reason: str, now: float) -> bool:
        """An attempt failed (connection error or 5xx); returns True when this failure ejects the site."""
        self.failures += 1
        self.consecutive_errors += 1
        self.last_error = reason
        if self.consecutive_errors < self.outlier.consecutive_errors or now < self.ejected_until:
            return False
        self.eject(now)
        return True

    def eject(self, now: float) -> float:
        """Take the site out for base × 2^(n-1) seconds (capped); returns the duration.

        ``n`` counts ejections in a row: it starts again at 1 once the site has gone a whole
        ``max_ejection_s`` since its last ejection ended without being ejected. The site comes back only
        when the ejection is over *and* health checks have passed again, hence ``healthy = False``.
        """
        last_end = self.ejected_until
        if self.ejection_streak and now - last_end > self.outlier.max_ejection_s:
            self.ejection_streak = 0
        self.ejection_streak += 1
        growth = float(2 ** min(self.ejection_streak - 1, 60))  # a flapping site must not overflow
        duration = min(self.outlier.base_ejection_s * growth, self.outlier.max_ejection_s)
        self.ejected_until = now + duration
        self.ejections += 1
        self.consecutive_errors = 0
        self.healthy = False
        self.check_successes = 0
        log.warning(
            "site %s ejected for %.2f s (ejection %d in a row) after %d consecutive errors, last: %s",
            self.name,
            duration,
            self.ejection_streak,
            self.outlier.consecutive_errors,
            self.last_error,
        )
        return duration

    # -- active checks ------------------------------------------------------------------------------

    def on_check(self, status: int | None, error: str | None, elapsed_s: float, now: float) -> None:
        """Record one check: 200 passes, a 503 (a draining server) fails at once, anything else counts."""
        self.checked = True
        self.last_check_ms = elapsed_s * 1000.0
        self.last_check_at = now
        if status == 200:
            self.last_check_error = None
            self.check_failures = 0
            self.check_successes += 1
            if not self.healthy and self.check_successes >= self.health.healthy_threshold:
                self.healthy = True
                log.info("site %s is healthy", self.name)
            return
        self.last_check_error = error or f"HTTP {status}"
        self.check_successes = 0
        self.check_failures += 1
        # A 503 is the server saying "stop sending" (it is draining): no reason to wait for a threshold.
        if self.healthy and (status == 503 or self.check_failures >= self.health.unhealthy_threshold):
            self.healthy = False
            log.warning("site %s is unhealthy: %s", self.name, self.last_check_error)


class HealthChecker:
    """Checks every site every ``interval_s`` on a connection of its own (never one from the traffic pool)."""

    def __init__(self, sites: list[SiteState], config: HealthCheck) -> None:
        self.sites = sites
        self.config = config
        self._pools = {
            site.name: ConnectionPool(site.upstream.host, site.upstream.port, max_idle=1) for site in sites
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._path = config.path.encode()

    async def check(self, site: SiteState) -> None:
        """One check of one site, recorded in its state."""
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            response = await self._pools[site.name].request(
                b"GET", self._path, b"", b"", self.config.timeout_s
            )
            status = response.status
        except UpstreamError as exc:
            error = str(exc)
        site.on_check(status, error, time.perf_counter() - started, site.clock())

    async def start(self) -> None:
        """Check every site once (so the gateway starts knowing who is up), then keep checking."""
        await asyncio.gather(*(self.check(site) for site in self.sites))
        self._tasks = [
            asyncio.create_task(self._loop(site), name=f"health-{site.name}") for site in self.sites
        ]

    def add(self, site: SiteState) -> None:
        """Start checking a backend added while running (its first check is at once)."""
        self.sites.append(site)
        self._pools[site.name] = ConnectionPool(site.upstream.host, site.upstream.port, max_idle=1)
        self._tasks.append(asyncio.create_task(self._loop(site), name=f"health-{site.name}"))

    def remove(self, name: str) -> None:
        """Stop checking a backend that was removed (its in-flight check is cancelled)."""
        self.sites = [site for site in self.sites if site.name != name]
        for task in [t for t in self._tasks if t.get_name() == f"health-{name}"]:
            task.cancel()
            self._tasks.remove(task)
        pool = self._pools.pop(name, None)
        if pool is not None:
            pool.close()

    async def _loop(self, site: SiteState) -> None:
        interval = self.config.interval_s
        while True:
            started = time.monotonic()
            try:
                await self.check(site)
            except Exception:  # a bug of ours must not end the checks of a site for good
                log.exception("health check of site %s failed unexpectedly", site.name)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def stop(self) -> None:
        """Cancel the loops and close the check connections."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for pool in self._pools.values():
            pool.close()
