"""Prometheus metrics for one server process, in a registry of its own (no globals at import)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["Metrics"]

# Latency buckets around the sub-millisecond to tens-of-milliseconds range a small model lives in.
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Powers of two up to well past the default batch limit, so that a call of one row (or one request) has a
# bucket of its own and a full batch is visible.
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """Requests by route and code, latency by route, errors by code; ``route`` is a template, never a URL.

    ORT calls are counted by model: rows per call and requests per call show how much micro-batching
    happens (a requests histogram that never leaves the 1 bucket means no request ever shared a call).
    """

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
        self.batch_rows = Histogram(
            "stratus_serving_batch_rows",
            "Rows (first-dimension size) per ONNX Runtime call",
            ["model"],
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "stratus_serving_batch_requests",
            "Infer requests served by one ONNX Runtime call",
            ["model"],
            buckets=_SIZE_BUCKETS,
            registry=self.registry,
        )
        # labels() costs a lock and a dict lookup on every call; the handful of children are kept here.
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, key: tuple[str, ...], make: Any) -> Any:
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = make()
        return child

    def observe(self, route: str, code: int, seconds: float) -> None:
        """Record one answered request."""
        self._child(("requests", route, str(code)), lambda: self.requests.labels(route, str(code))).inc()
        self._child(("latency", route), lambda: self.latency.labels(route)).observe(seconds)
        if code >= 400:
            self._child(("errors", str(code)), lambda: self.errors.labels(str(code))).inc()

    def observe_call(self, model: str, rows: int, requests: int, took_ns: int = 0) -> None:
        """Record one ONNX Runtime call; thread-safe, so a worker thread may call it."""
        self._child(("rows", model), lambda: self.batch_rows.labels(model)).observe(rows)
        self._child(("calls", model), lambda: self.batch_requests.labels(model)).observe(requests)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
