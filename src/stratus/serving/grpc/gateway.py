"""The gateway's gRPC front: ``inference.GRPCInferenceService`` routed to the sites' gRPC ports.

It runs on the gateway's event loop and routes with the HTTP side's own state (:class:`GatewayApp`):
the same routes and policies, site health (active HTTP checks, passive ejection fed by gRPC failures
too), retry budget, byte budget and metrics. ServerLive, ServerReady and ServerMetadata are answered
here; ModelReady, ModelMetadata and ModelInfer go to a site of the model named by the request's field 1.

Request and response bytes pass through unchanged (identity serializers): only the model name is read
(:mod:`.wire`), never the tensors. A call is retried on the next site only when the site answered
UNAVAILABLE (nothing listening, connection lost, or a server refusing for load, which REST calls 503),
within ``max_attempts`` and the retry budget. Any other code is passed on as the site gave it and never
retried: INVALID_ARGUMENT and NOT_FOUND are the client's, and a site that fails with INTERNAL or runs out
of time would fail the same way elsewhere. UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN and
DATA_LOSS count toward ejecting the site; every other answer counts as a success.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from stratus.serving.gateway.app import GatewayApp
from stratus.serving.gateway.health import SiteState

from . import grpc_predict_v2_pb2 as pb
from .service import FORWARDED, SERVICE, Context, listen, method_path
from .wire import WireError, string_field

__all__ = ["GrpcFront", "attach"]

log = logging.getLogger("stratus.gateway")

RETRIED = grpc.StatusCode.UNAVAILABLE
SITE_FAILURES = frozenset(
    (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DATA_LOSS,
    )
)
_SITE_KEY = "x-stratus-site"
# Metadata gRPC sets itself (or that names this hop): not forwarded to the site.
_NOT_FORWARDED = frozenset(("user-agent", "te", "content-type", "host", "authority"))
# Reconnect fast after a site restarts: gRPC's default backoff grows to two minutes, during which a site
# that passes its health checks again would still fail every gRPC call.
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class _AbortError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class GrpcFront:
    """The gateway's gRPC server on ``host:port``, with one channel per site that has a ``grpc_port``."""

    def __init__(self, app: GatewayApp, host: str, port: int, *, grace_s: float = 1.0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.grace_s = grace_s
        self._server: grpc.aio.Server | None = None
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._calls: dict[tuple[str, str], grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {}

    async def start(self) -> None:
        """Open the site channels, bind and serve; a port that cannot be bound is a ServingError."""
        for name, site in self.app.sites.items():
            port = site.upstream.grpc_port
            if port is not None:
                host = site.upstream.host
                target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
                self._channels[name] = channel
                for method in FORWARDED:
                    self._calls[name, method] = channel.unary_unary(method_path(method))
        limits = self.app.config.limits
        server, self.port = await listen(
            self._handlers(), self.host, self.port, limits, "the config's grpc.port"
        )
        self._server = server
        log.info("gateway gRPC (%s) on %s:%d; sites %s", SERVICE, self.host, self.port, list(self._channels))

    async def stop(self) -> None:
        """Stop serving (calls in flight get ``grace_s``), then close the site channels (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(self.grace_s)
        channels, self._channels = self._channels, {}
        self._calls = {}
        for channel in channels.values():
            await channel.close()

    def _handlers(self) -> grpc.GenericRpcHandler:
        local: dict[str, tuple[Callable[[], Any], Any]] = {
            "ServerLive": (lambda: pb.ServerLiveResponse(live=True), pb.ServerLiveRequest),
            "ServerReady": (lambda: pb.ServerReadyResponse(ready=self._ready()), pb.ServerReadyRequest),
            "ServerMetadata": (
                lambda: pb.ServerMetadataResponse(name="stratus-gateway", version=self.app.version),
                pb.ServerMetadataRequest,
            ),
        }
        handlers = {
            method: grpc.unary_unary_rpc_method_handler(
                _answering(answer),
                request_deserializer=request.FromString,
                response_serializer=_serialize,
            )
            for method, (answer, request) in local.items()
        }
        for method in FORWARDED:
            handlers[method] = grpc.unary_unary_rpc_method_handler(self._forwarding(method))
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    def _ready(self) -> bool:
        """Ready while some site that serves gRPC is routable (REST readiness, for gRPC's sites)."""
        now = self.app.clock()
        return any(self.app.sites[name].routable(now) for name in self._channels)

    def _forwarding(self, method: str) -> Callable[[bytes, Context], Awaitable[bytes]]:
        async def handle(data: bytes, context: Context) -> bytes:
            try:
                return await self._forward(method, data, context)
            except _AbortError as abort:
                await context.abort(abort.code, abort.message)
            except Exception as exc:  # a bug of ours: answer INTERNAL with the reason, keep serving
                log.exception("gateway internal error in %s", method)
                await context.abort(grpc.StatusCode.INTERNAL, f"gateway internal error: {exc}")
            raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

        return handle

    async def _forward(self, method: str, data: bytes, context: Context) -> bytes:
        """Send ``data`` to the model's sites in policy order; the first usable answer is returned."""
        app = self.app
        try:
            model = string_field(data, 1)
        except WireError as exc:
            raise _AbortError(
                grpc.StatusCode.INVALID_ARGUMENT, f"request is not a valid {method}Request: {exc}"
            ) from None
        route = app.routes.get(model)
        if route is None and method == "ModelReady":  # not an error: "not ready", as a server answers
            return _serialize(pb.ModelReadyResponse(ready=False))
        if route is None:
            app.metrics.request("unknown", "none", "grpc:NOT_FOUND")
            known = ", ".join(app.routes)
            raise _AbortError(
                grpc.StatusCode.NOT_FOUND, f"unknown model {model!r}: this gateway routes {known}"
            )
        reservation = app.body_budget.reserve()
        try:
            if not reservation.grow(len(data)):
                app.metrics.request(model, "none", "grpc:UNAVAILABLE")
                raise _AbortError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the gateway is holding as many request bytes as it may ({reservation.limit} bytes); "
                    "retry shortly",
                )
            return await self._attempts(method, model, data, context)
        finally:
            reservation.release()

    async def _attempts(self, method: str, model: str, data: bytes, context: Context) -> bytes:
        app = self.app
        now = app.clock()
        route = app.routes[model]
        candidates = [site for site in route.candidates(now, app.rng) if site.name in self._channels]
        if not candidates:
            app.metrics.request(model, "none", "grpc:UNAVAILABLE")
            reasons = ", ".join(
                f"{site.name}: {site.reason(now) if site.name in self._channels else 'no grpc_port'}"
                for site in route.sites
            )
            raise _AbortError(grpc.StatusCode.UNAVAILABLE, f"no healthy site for model {model!r}: {reasons}")
        metadata = tuple(
            (key, value)
            for key, value in context.invocation_metadata() or ()
            if key not in _NOT_FORWARDED and not key.startswith(("grpc-", ":"))
        )
        timeout = app.config.retry.upstream_timeout_s
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, max(remaining, 0.0))
        app.budget.record_request()
        errors: list[str] = []
        previous: SiteState | None = None
        for site in candidates[: app.config.retry.max_attempts]:
            if previous is not None:
                if not app.budget.try_acquire():
                    app.metrics.budget_exhausted()
                    errors.append("no retry: the retry budget is spent")
                    break
                previous.retries += 1
                app.metrics.retry(previous.name)
            previous = site
            site.requests += 1
            started = time.perf_counter()
            try:
                answer: bytes = await self._calls[site.name, method](data, timeout=timeout, metadata=metadata)
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details() or ""
                app.metrics.request(model, site.name, f"grpc:{code.name}")
                if code not in SITE_FAILURES:  # the client's mistake, answered by a healthy site
                    site.on_success(time.perf_counter() - started)
                    context.set_trailing_metadata(((_SITE_KEY, site.name),))
                    raise _AbortError(code, details) from None
                if site.on_failure(f"gRPC {code.name}: {details}", app.clock()):
                    app.metrics.ejection(site.name)
                if code != RETRIED:
                    context.set_trailing_metadata(((_SITE_KEY, site.name),))
                    raise _AbortError(code, details) from None
                errors.append(f"{site.name}: {code.name} {details}")
                continue
            elapsed = time.perf_counter() - started
            app.metrics.request(model, site.name, "grpc:OK")
            app.metrics.latency(site.name, elapsed)
            site.on_success(elapsed)
            context.set_trailing_metadata(((_SITE_KEY, site.name),))
            return answer
        raise _AbortError(
            grpc.StatusCode.UNAVAILABLE, f"model {model!r}: no site answered: {'; '.join(errors)}"
        )


def _answering(answer: Callable[[], Any]) -> Callable[[Any, Context], Awaitable[Any]]:
    async def handle(request: Any, context: Context) -> Any:
        return answer()

    return handle


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def attach(app: GatewayApp, host: str, port: int) -> GrpcFront:
    """A gRPC front for ``app`` that starts and stops with it."""
    front = GrpcFront(app, host, port)
    app.on_start.append(front.start)
    app.on_stop.append(front.stop)
    return front
