"""The gateway as a raw ASGI application: one V2 endpoint in front of many model servers ("sites").

``/v2/models/{m}/...`` is proxied (method, path and body unchanged) to the routable sites of ``m`` in the
order of the model's policy: the first gets the request, the next ones its retries. A retry happens only
when no usable answer came back (connection refused or reset, timeout, 502/503/504), only on another
site, at most ``max_attempts`` tries, and only while the retry budget allows; a 4xx passes through
unchanged and is never retried. Every 5xx and connection error counts toward ejecting the site.

The gateway answers ``/v2`` (its own metadata), ``/v2/health/live``, ``/v2/health/ready`` (ready while
some site is routable), ``/metrics`` and ``/admin/...`` itself. No web framework, for the same reason as
the model server: the gateway's whole budget is half a millisecond.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

import orjson

from stratus.serving.asgi import (
    JSON,
    AnswerError,
    Header,
    Receive,
    Scope,
    Send,
    error_answer,
    header,
    only,
    read_body,
    respond,
)
from stratus.serving.gateway.admin import Admin
from stratus.serving.gateway.backends import Backends
from stratus.serving.gateway.config import TOKEN_ENV, GatewayConfig
from stratus.serving.gateway.fanout import summed_stats
from stratus.serving.gateway.health import HealthChecker, SiteState
from stratus.serving.gateway.metrics import GatewayMetrics
from stratus.serving.gateway.policies import Route
from stratus.serving.gateway.retry import RetryBudget
from stratus.serving.gateway.upstream import ConnectionPool, UpstreamError, UpstreamResponse
from stratus.serving.limits import BodyReservation, ByteBudget
from stratus.serving.routes import EXTENSIONS, model_path, parse_index_request, unknown_model

__all__ = ["ADMIN_MAX_BODY_BYTES", "GatewayApp"]

# The admin API takes no body: anything bigger than this is refused before the token is even checked.
ADMIN_MAX_BODY_BYTES = 4096
RETRYABLE_STATUS = frozenset((502, 503, 504))
# Hop-by-hop headers, and those the gateway sets itself, are not forwarded in either direction.
_NOT_FORWARDED = frozenset(
    (
        b"host",
        b"content-length",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-connection",
        b"proxy-authorization",
        b"expect",
    )
)
_NOT_RETURNED = frozenset((*_NOT_FORWARDED, b"date", b"server"))
_SITE_HEADER = b"x-stratus-site"
log = logging.getLogger("stratus.gateway")


class GatewayApp:
    """The ASGI gateway for ``config``; health checks run between lifespan startup and shutdown.

    ``clock`` (monotonic seconds) and ``rng`` are injectable so that the routing state can be driven in
    tests; the running gateway uses :func:`time.monotonic` and a fresh :class:`random.Random`.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng or random.Random()
        self.version = metadata.version("stratus")
        self.sites = {
            up.name: SiteState(up, config.health, config.outlier, clock=clock) for up in config.sites
        }
        self.pools = {up.name: ConnectionPool(up.host, up.port) for up in config.sites}
        self.routes = {
            model: Route(model, route.policy, [self.sites[up.name] for up in config.route_sites(model)])
            for model, route in config.models.items()
        }
        self.budget = RetryBudget(config.retry.budget_ratio, config.retry.min_retries_per_s, clock=clock)
        self.metrics = GatewayMetrics(list(self.sites))
        self.health = HealthChecker(list(self.sites.values()), config.health)
        token = config.admin_token or os.environ.get(TOKEN_ENV) or None
        backends = Backends(config, self.sites, self.pools, self.routes, self.health, clock=clock)
        self.admin = Admin(token, self.sites, self.routes, clock=clock, backends=backends)
        # Bytes of request bodies held until the answer is sent (a body is kept for its retries).
        self.body_budget = ByteBudget(config.limits.max_inflight_bytes)
        self._timeout = config.retry.upstream_timeout_s
        self._max_attempts = config.retry.max_attempts
        self._started = False
        self._stopped = False
        # Awaited after the first round of checks, and before the connections close: the gRPC front's.
        self.on_start: list[Callable[[], Awaitable[None]]] = []
        self.on_stop: list[Callable[[], Awaitable[None]]] = []

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Check every site once, then keep checking in the background."""
        if not self._started:
            self._started = True
            await self.health.start()
            for hook in self.on_start:
                await hook()
            up = [name for name, site in self.sites.items() if site.healthy]
            log.info("gateway started: %d of %d sites healthy (%s)", len(up), len(self.sites), ", ".join(up))

    async def stop(self) -> None:
        """Stop the checks and close every upstream connection (for good: a stopped app stays stopped)."""
        if self._started and not self._stopped:
            self._stopped = True
            for hook in self.on_stop:
                await hook()
            await self.health.stop()
            for pool in self.pools.values():
                pool.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- ASGI ---------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        if not self._started:  # served without a lifespan: start the checks on first use instead
            await self.start()
        path: str = scope["path"]
        reservation = self.body_budget.reserve()
        try:
            if path.startswith("/v2/models"):
                await self._model_request(scope, receive, send, path, reservation)
                return
            status, body, headers = await self._local(scope, receive, path, reservation)
        except Exception as exc:
            status, body, headers = error_answer(exc, log, "gateway internal error")
        finally:
            reservation.release()  # after a proxied answer is sent; before a local one (it holds no body)
        await respond(send, status, headers, body)

    async def _local(
        self, scope: Scope, receive: Receive, path: str, reservation: BodyReservation
    ) -> tuple[int, bytes, list[Any]]:
        """Everything the gateway answers itself: health, metadata, metrics, admin."""
        method: str = scope["method"]
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == "admin":
            body = await read_body(
                scope["headers"], receive, ADMIN_MAX_BODY_BYTES, reservation, "the admin API"
            )
            auth = header(scope, b"authorization")
            status, doc, headers = self.admin.handle(method, parts[1:], auth, body)
            return status, orjson.dumps(doc), [JSON, *headers]
        if parts == ["metrics"]:
            only(method, "GET")
            now = self.clock()
            for name, site in self.sites.items():
                self.metrics.site_healthy.labels(name).set(1 if site.routable(now) else 0)
            return 200, self.metrics.render(), [(b"content-type", self.metrics.content_type.encode())]
        if parts == ["v2"]:
            only(method, "GET")
            meta = {"name": "stratus-gateway", "version": self.version, "extensions": list(EXTENSIONS)}
            return 200, orjson.dumps(meta), [JSON]
        if parts == ["v2", "repository", "index"]:
            only(method, "POST")
            limit = self.config.limits.max_body_bytes
            ready_only = parse_index_request(
                await read_body(scope["headers"], receive, limit, reservation, "the gateway")
            )
            return 200, orjson.dumps(self._index(ready_only)), [JSON]
        if parts == ["v2", "health", "live"]:
            only(method, "GET")
            return 200, orjson.dumps({"live": True}), [JSON]
        if parts == ["v2", "health", "ready"]:
            only(method, "GET")
            now = self.clock()
            ready = any(site.routable(now) for site in self.sites.values())
            return (200 if ready else 503), orjson.dumps({"ready": ready}), [JSON]
        if parts and parts[0] == "v2":  # as the model server says it
            raise AnswerError(404, {"error": f"no route {path!r}"})
        raise AnswerError(404, {"error": f"no route {path!r}: this gateway speaks the V2 protocol"})

    async def _model_request(
        self, scope: Scope, receive: Receive, send: Send, path: str, reservation: BodyReservation
    ) -> None:
        """Proxy ``/v2/models/{m}/...`` to the sites of ``m``, retrying on another site when allowed.

        The path is checked as the model server checks it (no route 404, wrong method 405 with Allow,
        unknown model 404, in that order, with the same messages), so both answer a bad path alike.
        Statistics are summed over every routable site rather than proxied to one.
        """
        parsed = model_path([p for p in path.split("/") if p][2:]) if path[10:11] in ("", "/") else None
        if parsed is None:
            raise AnswerError(404, {"error": f"no route {path!r}"})
        method: str = scope["method"]
        only(method, parsed.method)
        if not parsed.model:
            await self._stats(
                send, list(self.routes), self._routable_sites(list(self.routes.values())), scope
            )
            return
        model = parsed.model
        route = self.routes.get(model)
        if route is None:
            self.metrics.request("unknown", "none", "404")  # not the name: clients could add any label
            raise AnswerError(404, {"error": unknown_model(model, list(self.routes))})
        if parsed.action == "stats":
            await self._stats(send, [model], self._routable_sites([route]), scope)
            return
        limit = self.config.limits.max_body_bytes
        body = await read_body(scope["headers"], receive, limit, reservation, "the gateway")
        now = self.clock()
        candidates = route.candidates(now, self.rng)
        if not candidates:
            self.metrics.request(model, "none", "503")
            reasons = ", ".join(f"{site.name}: {site.reason(now)}" for site in route.sites)
            raise AnswerError(503, {"error": f"no healthy site for model {model!r}: {reasons}"})
        target = scope.get("raw_path") or path.encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = _forwarded(scope)
        self.budget.record_request()
        errors: list[str] = []
        last: tuple[SiteState, UpstreamResponse] | None = None
        timed_out = False
        previous: SiteState | None = None
        for site in candidates[: self._max_attempts]:
            if previous is not None:
                if not self.budget.try_acquire():
                    self.metrics.budget_exhausted()
                    errors.append("no retry: the retry budget is spent")
                    break
                previous.retries += 1
                self.metrics.retry(previous.name)
            previous = site
            site.requests += 1
            started = time.perf_counter()
            try:
                response = await self.pools[site.name].request(
                    method.encode(), target, headers, body, self._timeout
                )
            except UpstreamError as exc:
                self.metrics.request(model, site.name, exc.kind)
                timed_out = exc.kind == "timeout"
                errors.append(f"{site.name}: {exc}")
                self._failed(site, str(exc))
                continue
            elapsed = time.perf_counter() - started
            status = response.status
            self.metrics.request(model, site.name, str(status))
            self.metrics.latency(site.name, elapsed)
            if status < 500:
                site.on_success(elapsed)
                await respond(send, status, _passed_headers(response, site), response.body)
                return
            self._failed(site, f"HTTP {status}")
            if status not in RETRYABLE_STATUS:
                # A 500 is the model failing on this input: another site would fail the same way.
                await respond(send, status, _passed_headers(response, site), response.body)
                return
            last = (site, response)
            errors.append(f"{site.name}: HTTP {status}")
        if last is not None:  # a site's own 502/503/504 says more than a summary of ours
            site, response = last
            await respond(send, response.status, _passed_headers(response, site), response.body)
            return
        status = 504 if timed_out else 502
        raise AnswerError(status, {"error": f"model {model!r}: no site answered: {'; '.join(errors)}"})

    def _routable_sites(self, routes: list[Route]) -> list[SiteState]:
        now = self.clock()
        found: dict[str, SiteState] = {}
        for route in routes:
            for site in route.candidates(now, self.rng):
                found.setdefault(site.name, site)
        return list(found.values())

    async def _stats(self, send: Send, models: list[str], sites: list[SiteState], scope: Scope) -> None:
        """Triton's statistics of ``models``, summed over ``sites`` (see :mod:`.fanout`)."""
        if not sites:
            raise AnswerError(503, {"error": f"no healthy site to ask for statistics of {', '.join(models)}"})
        target = scope.get("raw_path") or scope["path"].encode()
        status, body, headers = await summed_stats(
            [(site.name, self.pools[site.name]) for site in sites],
            target,
            _forwarded(scope),
            self._timeout,
            models,
        )
        await respond(send, status, headers, body)

    def _index(self, ready_only: bool) -> list[dict[str, str]]:
        """The repository index: each routed model, READY while some site of it is routable."""
        now = self.clock()
        index = []
        for name, route in sorted(self.routes.items()):
            if any(site.routable(now) for site in route.sites):
                index.append({"name": name, "state": "READY"})
            elif not ready_only:
                index.append({"name": name, "state": "UNAVAILABLE", "reason": "no healthy site"})
        return index

    def _failed(self, site: SiteState, reason: str) -> None:
        if site.on_failure(reason, self.clock()):
            self.metrics.ejection(site.name)


def _forwarded(scope: Scope) -> bytes:
    """The request's headers to send upstream, as ``name: value\r\n`` lines (binary tensor data's
    Inference-Header-Content-Length among them: the body passes through undecoded)."""
    return b"".join(
        name + b": " + value + b"\r\n" for name, value in scope["headers"] if name not in _NOT_FORWARDED
    )


def _passed_headers(response: UpstreamResponse, site: SiteState) -> list[Header]:
    headers = [(name, value) for name, value in response.headers if name.lower() not in _NOT_RETURNED]
    headers.append((_SITE_HEADER, site.site.encode()))  # the site, whichever of its replicas answered
    return headers
