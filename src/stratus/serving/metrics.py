"""Prometheus metrics for one server process, in a registry of its own (no globals at import)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["Metrics"]

# Latency buckets around the sub-millisecond to tens-of-milliseconds range a small model lives in.
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Requests by route and code, latency by route, errors by code; ``route`` is a template, never a URL."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "stratus_serving_requests", "HTTP requests answered", ["route", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "stratus_serving_request_seconds",
            "Time from request start to response end",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "stratus_serving_errors", "Responses with a 4xx or 5xx code", ["code"], registry=self.registry
        )

    def observe(self, route: str, code: int, seconds: float) -> None:
        """Record one answered request."""
        self.requests.labels(route, str(code)).inc()
        self.latency.labels(route).observe(seconds)
        if code >= 400:
            self.errors.labels(str(code)).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
