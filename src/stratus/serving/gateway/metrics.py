"""Prometheus metrics of the gateway, in a registry of its own (no globals at import).

Label children are cached in dicts: ``Counter.labels()`` takes a lock and builds a tuple on every call,
which is measurable against the gateway's sub-millisecond budget.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["GatewayMetrics"]

_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class GatewayMetrics:
    """Attempts by model/site/code, upstream latency, retries and ejections by site, site health."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, sites: Sequence[str] = ()) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "stratus_gateway_requests",
            "Upstream attempts by model, site and outcome (HTTP code, or the connection error kind); "
            "requests answered by the gateway itself have site 'none'",
            ["model", "site", "code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "stratus_gateway_upstream_seconds",
            "Time from sending a request to a site to having its whole response",
            ["site"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._retries = Counter(
            "stratus_gateway_retries",
            "Retries on another site, by the site whose failure caused them",
            ["site"],
            registry=self.registry,
        )
        self._ejections = Counter(
            "stratus_gateway_ejections", "Passive outlier ejections", ["site"], registry=self.registry
        )
        self._budget_exhausted = Counter(
            "stratus_gateway_retry_budget_exhausted",
            "Retries not made because the retry budget was spent",
            registry=self.registry,
        )
        self.site_healthy = Gauge(
            "stratus_gateway_site_healthy",
            "1 when the site takes new requests (healthy, not ejected, not drained), else 0",
            ["site"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, str], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}
        # Every site's series exist from the start at 0, so that rate() and alerts see them before the
        # first retry or ejection ever happens.
        for site in sites:
            self._retries.labels(site)
            self._ejections.labels(site)
            self.site_healthy.labels(site).set(0)

    def request(self, model: str, site: str, code: str) -> None:
        """Count one attempt (or one answer of the gateway's own, with ``site='none'``)."""
        key = (model, site, code)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self._requests.labels(model, site, code)
        child.inc()

    def latency(self, site: str, seconds: float) -> None:
        """Observe one upstream round trip."""
        child = self._latency_children.get(site)
        if child is None:
            child = self._latency_children[site] = self._latency.labels(site)
        child.observe(seconds)

    def retry(self, site: str) -> None:
        """Count one retry caused by ``site``."""
        self._retries.labels(site).inc()

    def ejection(self, site: str) -> None:
        """Count one ejection of ``site``."""
        self._ejections.labels(site).inc()

    def budget_exhausted(self) -> None:
        """Count one retry refused by the budget."""
        self._budget_exhausted.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
