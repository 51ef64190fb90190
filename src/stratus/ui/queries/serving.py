"""Deployments from their records, and per-site traffic from each live gateway's ``/metrics``.

A deployment's state comes from its record and /proc (:mod:`stratus.serving.fleet_state`), as ``serve
status`` reads it. Traffic is what the gateways counted (requests by site and code, the upstream latency
histogram), summed over a deployment's gateways. The request rate is the change since the previous look
at the page (:class:`RateTracker`), or on the first look the average since the deployment started.
"""

from __future__ import annotations

import http.client
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stratus.errors import StratusError
from stratus.serving.deployments import list_deployments
from stratus.serving.fleet_state import fleet_state, process_states
from stratus.workspace import Workspace

__all__ = [
    "METRICS_TIMEOUT_S",
    "DeploymentView",
    "RateTracker",
    "SiteTraffic",
    "deployment_views",
    "parse_gateway_metrics",
    "serving_endpoints",
]

#: How long a gateway gets to answer ``GET /metrics`` for the serving page.
METRICS_TIMEOUT_S = 1.0
#: The largest metrics page read from a gateway (ours are a few kB per site).
_MAX_METRICS_BYTES = 4 * 1024 * 1024


@dataclass
class SiteTraffic:
    """What the gateways counted for one site: requests, errors, latency (ms) and request rate (/s)."""

    site: str
    requests: float = 0.0
    errors: float = 0.0
    latency_sum_s: float = 0.0
    latency_count: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound (s) → cumulative count
    rate_per_s: float | None = None

    @property
    def error_rate(self) -> float | None:
        """Errors over requests; None before the first request."""
        return self.errors / self.requests if self.requests else None

    @property
    def mean_ms(self) -> float | None:
        """Mean upstream latency in milliseconds; None before the first request."""
        return 1000 * self.latency_sum_s / self.latency_count if self.latency_count else None

    @property
    def p95_ms(self) -> float | None:
        """The 95th percentile's bucket bound in ms (an upper estimate, as Prometheus buckets give)."""
        if not self.latency_count:
            return None
        wanted = 0.95 * self.latency_count
        for bound in sorted(self.buckets):
            if self.buckets[bound] >= wanted:
                return None if math.isinf(bound) else 1000 * bound
        return None


@dataclass(frozen=True)
class ProcessView:
    """A process of the deployment: role, name, address and whether it is alive."""

    role: str
    name: str
    address: str | None
    running: bool


@dataclass(frozen=True)
class DeploymentView:
    """One deployment: model, source, policy, state, processes, and per-site traffic (or why none)."""

    name: str
    model: str
    source: str
    policy: str
    state: str
    started_at: str
    endpoint: str
    processes: tuple[ProcessView, ...]
    traffic: tuple[SiteTraffic, ...]
    metrics_problem: str | None
    sites: tuple[str, ...]


class RateTracker:
    """Remembers each (deployment, site)'s request count and when it was read, to turn counts into rates."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def rate(self, key: tuple[str, str], count: float, started: datetime | None) -> float | None:
        """Requests per second since the last call for ``key`` (else since ``started``); None if unknown."""
        now = time.monotonic()
        with self._lock:
            previous = self._seen.get(key)
            self._seen[key] = (now, count)
        if previous is not None and now > previous[0] and count >= previous[1]:
            return (count - previous[1]) / (now - previous[0])
        if started is None:
            return None
        elapsed = (datetime.now(UTC) - started).total_seconds()
        return count / elapsed if elapsed > 0 else None


def deployment_views(
    workspace: Workspace,
    tracker: RateTracker | None,
    timeout_s: float = METRICS_TIMEOUT_S,
) -> list[DeploymentView]:
    """Every recorded deployment of the platform, with its live traffic when a gateway answers.

    Without a ``tracker`` no gateway is asked (the processes alone, e.g. for the sites page's endpoints).
    """
    views = []
    for listed in list_deployments(workspace.serve_dir):
        deployment = listed.deployment
        states = process_states(deployment)
        alive = {s.name for s in states if s.role == "gateway" and s.running}
        traffic: dict[str, SiteTraffic] = {site: SiteTraffic(site) for site in deployment.site_names}
        problems = []
        for gateway in deployment.gateways if tracker is not None else ():
            if gateway.name not in alive:
                problems.append(f"{gateway.name}: not running")
                continue
            try:
                text = _get_metrics(gateway.url, timeout_s)
            except (OSError, StratusError) as exc:
                problems.append(f"{gateway.name}: {exc}")
                continue
            for site, counted in parse_gateway_metrics(text).items():
                _add(traffic.setdefault(site, SiteTraffic(site)), counted)
        started = _parse_time(deployment.started_at)
        for site, found in traffic.items():
            found.rate_per_s = tracker.rate((listed.name, site), found.requests, started) if tracker else None
        views.append(
            DeploymentView(
                name=listed.name,
                model=deployment.model,
                source=deployment.source,
                policy=deployment.policy,
                state=fleet_state(deployment, states),
                started_at=deployment.started_at,
                endpoint=f"{deployment.gateway_url}/v2/models/{deployment.model}/infer",
                processes=tuple(ProcessView(s.role, s.name, s.address, s.running) for s in states),
                traffic=tuple(traffic.values()),
                metrics_problem="; ".join(problems) or None,
                sites=tuple(deployment.site_names),
            )
        )
    return views


def serving_endpoints(deployments: list[DeploymentView]) -> dict[str, list[str]]:
    """Site → "MODEL: server URL (state)" for each model server a deployment runs there."""
    found: dict[str, list[str]] = {}
    for d in deployments:
        for p in d.processes:
            if p.role == "server" and p.address:
                site = p.name.split("~", 1)[0]
                state = "running" if p.running else "dead"
                found.setdefault(site, []).append(f"{d.model}: {p.address} ({state})")
    return found


def parse_gateway_metrics(text: str) -> dict[str, SiteTraffic]:
    """Per-site counts from a gateway's Prometheus text (site ``none``: the gateway's own answers)."""
    from prometheus_client.parser import text_string_to_metric_families

    sites: dict[str, SiteTraffic] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            site = sample.labels.get("site")
            if not site or site == "none":
                continue
            found = sites.setdefault(site, SiteTraffic(site))
            if sample.name == "stratus_gateway_requests_total":
                found.requests += sample.value
                if not sample.labels.get("code", "").startswith("2"):
                    found.errors += sample.value
            elif sample.name == "stratus_gateway_upstream_seconds_sum":
                found.latency_sum_s += sample.value
            elif sample.name == "stratus_gateway_upstream_seconds_count":
                found.latency_count += sample.value
            elif sample.name == "stratus_gateway_upstream_seconds_bucket":
                bound = float(sample.labels.get("le", "+Inf"))
                found.buckets[bound] = found.buckets.get(bound, 0.0) + sample.value
    return sites


def _add(into: SiteTraffic, counted: SiteTraffic) -> None:
    into.requests += counted.requests
    into.errors += counted.errors
    into.latency_sum_s += counted.latency_sum_s
    into.latency_count += counted.latency_count
    for bound, count in counted.buckets.items():
        into.buckets[bound] = into.buckets.get(bound, 0.0) + count


def _get_metrics(url: str, timeout_s: float) -> str:
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=timeout_s)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read(_MAX_METRICS_BYTES)
    finally:
        conn.close()
    if response.status != 200:
        raise StratusError(f"GET /metrics answered {response.status}")
    return body.decode("utf-8", errors="replace")


def _parse_time(text: str) -> datetime | None:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
