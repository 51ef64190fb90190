"""A raw-ASGI Open Inference Protocol (KServe V2) REST server for ONNX models.

No web framework: routing a dozen fixed paths by hand and encoding with orjson is what made a minimal V2
server ~8x faster than the framework-based peers (see the field notes). Bad client input is always a 400
(404 for an unknown model or version, as Triton answers; 413 for an oversized body), never a 5xx.
Tensors travel as JSON or as Triton's binary tensor data, and Triton's model configuration, statistics
and repository index are served as tritonclient calls them (:mod:`stratus.serving.protocol`,
:mod:`stratus.serving.stats`). On SIGTERM the server drains: readiness fails at once so
load balancers stop sending, requests (in flight and new) are still served for ``drain_s``, then it exits 0.
Concurrent infer requests for one model share ONNX Runtime calls (:mod:`stratus.serving.batching`). The
OpenAPI 3 document of the routes is served at ``/v2/openapi.json`` (not part of V2, but harmless).

Run: ``python -m stratus.serving.server --model NAME=path.onnx --host 127.0.0.1 --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata, resources
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import uvicorn

from stratus.errors import ServingError
from stratus.serving.asgi import (
    JSON,
    AnswerError,
    Receive,
    Scope,
    Send,
    error_answer,
    only,
    read_body,
    respond,
)
from stratus.serving.batching import DEFAULT_MAX_BATCH_ROWS, Batcher
from stratus.serving.binary import HEADER, header_length
from stratus.serving.http_guard import uvicorn_config
from stratus.serving.limits import (
    DEFAULT_MAX_BODY_BYTES,
    BodyReservation,
    ByteBudget,
    ServingLimits,
    add_limit_flags,
    limits_from_flags,
)
from stratus.serving.metrics import Metrics
from stratus.serving.model import Model
from stratus.serving.protocol import encode_response, parse_infer_request
from stratus.serving.routes import EXTENSIONS, model_path, parse_index_request, unknown_model
from stratus.serving.stats import ModelStats

__all__ = ["DEFAULT_MAX_BODY_BYTES", "ServingApp", "main", "openapi_document"]

_JSON = [JSON]
_BINARY = (b"content-type", b"application/octet-stream")
# Scope key where a handler notes its route template as soon as it knows it, so that an error answered
# later is counted under the route rather than "unknown".
_ROUTE = "stratus.route"
# Scope key of the request's hold on the byte budget, released once the answer is sent.
_RESERVATION = "stratus.reservation"
log = logging.getLogger("stratus.serving")


def openapi_document(model_names: Sequence[str] = ()) -> dict[str, Any]:
    """The OpenAPI 3 document of the server's routes, shipped as package data (``openapi.json``).

    With ``model_names``, the ``model_name`` path parameter lists them as its only values, so that the
    document served by a running server says which models it serves (and a fuzzer generates requests that
    reach the models rather than only "unknown model" answers).
    """
    text = resources.files("stratus.serving").joinpath("openapi.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = orjson.loads(text)
    if model_names:
        doc = copy.deepcopy(doc)
        doc["components"]["parameters"]["model_name"]["schema"]["enum"] = sorted(model_names)
    return doc


def _only(scope: Scope, route: str, allowed: str) -> None:
    """Note ``route`` as the request's route, and answer 405 unless the method is ``allowed``."""
    scope[_ROUTE] = route
    only(scope["method"], allowed)


class ServingApp:
    """The ASGI application: V2 health, metadata and inference for ``models``, plus ``/metrics``."""

    def __init__(
        self,
        models: Sequence[Model],
        *,
        limits: ServingLimits | None = None,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
    ) -> None:
        self.models = {model.name: model for model in models}
        self.limits = limits or ServingLimits()
        # Bytes of request bodies held until their answers are sent (the parsed tensors live as long).
        self.budget = ByteBudget(self.limits.max_inflight_bytes)
        self.metrics = Metrics()
        self.stats = {model.name: ModelStats(model.name, model.version) for model in models}
        self.batchers = {
            model.name: Batcher(model, max_batch_rows=max_batch_rows, observe=self._observe_call)
            for model in models
        }
        self.draining = False
        # Awaited at lifespan startup and (before the batchers close) shutdown: the gRPC listener's hooks.
        self.on_startup: list[Callable[[], Awaitable[None]]] = []
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []
        self.version = metadata.version("stratus")
        openapi = openapi_document(list(self.models))
        openapi["info"]["version"] = self.version
        self.openapi = orjson.dumps(openapi)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        route = "unknown"
        reservation = scope[_RESERVATION] = self.budget.reserve()
        try:
            route, status, body, headers = await self._dispatch(scope, receive)
        except Exception as exc:
            status, body, headers = error_answer(exc, log, "internal error")
            route = scope.get(_ROUTE, route)
        try:
            await respond(send, status, [*headers], body)
        finally:
            reservation.release()
        self.metrics.observe(route, status, time.perf_counter() - started)

    def _observe_call(self, model: str, rows: int, requests: int, took_ns: int) -> None:
        """Told of each ORT call by the batcher (maybe from its worker thread): metrics and statistics."""
        self.metrics.observe_call(model, rows, requests, took_ns)
        self.stats[model].call(rows, requests, took_ns)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        await hook()
                except ServingError as exc:  # uvicorn logs the message and exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    await hook()
                for batcher in self.batchers.values():
                    batcher.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(self, scope: Scope, receive: Receive) -> tuple[str, int, bytes, list[Any]]:
        """Route by hand; returns (route template for metrics, status, body, headers)."""
        parts = [p for p in scope["path"].split("/") if p]
        if parts == ["metrics"]:
            _only(scope, "/metrics", "GET")
            return (
                "/metrics",
                200,
                self.metrics.render(),
                [(b"content-type", self.metrics.content_type.encode())],
            )
        if not parts or parts[0] != "v2":
            raise AnswerError(
                404, {"error": f"no route {scope['path']!r}: this server speaks the V2 protocol"}
            )
        if parts == ["v2", "openapi.json"]:
            _only(scope, "/v2/openapi.json", "GET")
            return "/v2/openapi.json", 200, self.openapi, _JSON
        if len(parts) >= 2 and parts[1] == "models":
            return await self._model_path(parts[2:], scope, receive)
        route, status, doc = await self._v2(parts[1:], scope, receive)
        return route, status, orjson.dumps(doc), _JSON

    async def _v2(self, parts: list[str], scope: Scope, receive: Receive) -> tuple[str, int, Any]:
        if not parts:
            _only(scope, "/v2", "GET")
            return "/v2", 200, {"name": "stratus", "version": self.version, "extensions": list(EXTENSIONS)}
        if parts == ["health", "live"]:
            _only(scope, "/v2/health/live", "GET")
            return "/v2/health/live", 200, {"live": True}
        if parts == ["health", "ready"]:
            _only(scope, "/v2/health/ready", "GET")
            ready = not self.draining
            return "/v2/health/ready", 200 if ready else 503, {"ready": ready}
        if parts == ["repository", "index"]:
            _only(scope, "/v2/repository/index", "POST")
            body = await read_body(
                scope["headers"], receive, self.limits.max_body_bytes, scope[_RESERVATION], "the model server"
            )
            parse_index_request(body)  # every model is loaded and ready: the filter changes nothing
            index = [{"name": m.name, "version": m.version, "state": "READY"} for m in self.models.values()]
            return "/v2/repository/index", 200, sorted(index, key=lambda entry: entry["name"])
        raise AnswerError(404, {"error": f"no route {scope['path']!r}"})

    async def _model_path(
        self, parts: list[str], scope: Scope, receive: Receive
    ) -> tuple[str, int, bytes, list[Any]]:
        """``/v2/models/...``: the route (hence the method) is known from the path alone, so a wrong
        method is a 405 even for a model or version that does not exist; then an unknown one is a 404."""
        path = model_path(parts)
        if path is None:
            raise AnswerError(404, {"error": f"no route {scope['path']!r}"})
        route = path.route
        _only(scope, route, path.method)
        if not path.model:
            every = {"model_stats": [self.stats[name].triton() for name in sorted(self.models)]}
            return route, 200, orjson.dumps(every), _JSON
        model = self._model(path.model)
        if path.version is not None and path.version != model.version:
            raise ServingError(
                f"model {model.name!r} has no version {path.version!r}; it has ['{model.version}']",
                status=404,
            )
        if path.action == "infer":
            reservation: BodyReservation = scope[_RESERVATION]
            body = await read_body(
                scope["headers"], receive, self.limits.max_body_bytes, reservation, "the model server"
            )
            return (route, 200, *await self._infer(model, body, header_length(scope["headers"])))
        if path.action == "ready":
            doc: Any = {"name": model.name, "ready": True}
        elif path.action == "config":
            doc = model.config()
        elif path.action == "stats":
            doc = {"model_stats": [self.stats[model.name].triton()]}
        else:
            doc = model.metadata()
        return route, 200, orjson.dumps(doc), _JSON

    def _model(self, name: str) -> Model:
        model = self.models.get(name)
        if model is None:
            raise ServingError(unknown_model(name, list(self.models)), status=404)
        return model

    async def _infer(self, model: Model, body: bytes, length: bytes | None) -> tuple[bytes, list[Any]]:
        """Parse, run (batched), encode; the request's phases are timed for the statistics extension."""
        stats = self.stats[model.name]
        started = time.perf_counter_ns()
        try:
            # The JSON part is JSON whatever the Content-Type says: tritonclient sends none at all.
            request = parse_infer_request(body, model.inputs, model.output_names, length)
            parsed = time.perf_counter_ns()
            # The batcher runs ORT in a worker thread (ORT releases the GIL), so health checks keep
            # answering meanwhile.
            specs, arrays = await self.batchers[model.name].run(request.inputs, request.outputs)
            ran = time.perf_counter_ns()
            answer, json_length = encode_response(model.name, model.version, request, specs, arrays)
        except BaseException:
            stats.request(False, time.perf_counter_ns() - started)
            raise
        done = time.perf_counter_ns()
        stats.request(True, done - started, parsed - started, ran - parsed, done - ran)
        if json_length is None:
            return answer, _JSON
        # JSON then raw bytes: not application/json, and the header says where the JSON ends.
        return answer, [_BINARY, (HEADER, b"%d" % json_length)]


class _DrainingServer(uvicorn.Server):
    """uvicorn, except that the first SIGTERM starts a drain instead of closing the sockets at once."""

    def __init__(self, config: uvicorn.Config, app: ServingApp, drain_s: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_s = drain_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self.app.draining:
            super().handle_exit(sig, frame)
            return
        # Not recorded as a captured signal, so that uvicorn does not re-raise it: a drained exit is 0.
        self.app.draining = True
        log.warning("SIGTERM: readiness now fails; serving for %.1f s more, then exiting", self.drain_s)
        loop = asyncio.get_event_loop()
        loop.call_soon_threadsafe(loop.call_later, self.drain_s, setattr, self, "should_exit", True)


def _parse_model(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=path.onnx, got {text!r}")
    return name, Path(path)


def _version(text: str) -> str:
    """A version is a URL segment (``/v2/models/M/versions/V``): letters, digits, ``._-``."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", text):
        raise argparse.ArgumentTypeError(f"expected a version such as 3 (letters, digits, ._-), got {text!r}")
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Load the models and serve until stopped; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m stratus.serving.server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", action="append", type=_parse_model, required=True, metavar="NAME=PATH")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--drain-s", type=float, default=5.0, help="seconds to keep serving after SIGTERM")
    parser.add_argument("--intra-op-threads", type=int, default=None, help="ORT threads per call")
    parser.add_argument(
        "--max-batch-rows",
        type=_positive_int,
        default=DEFAULT_MAX_BATCH_ROWS,
        help="most rows one ORT call may gather from concurrent requests; 1 disables batching",
    )
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=None,
        help="also serve the V2 gRPC protocol on this port (default: off)",
    )
    parser.add_argument(
        "--model-version",
        type=_version,
        default="1",
        help="the version V2 answers name (model_version); a registered model's version number",
    )
    add_limit_flags(parser)
    args = parser.parse_args(argv)
    limits = limits_from_flags(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        models = [
            Model(name, path, intra_op_threads=args.intra_op_threads, version=args.model_version)
            for name, path in args.model
        ]
    except ServingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    app = ServingApp(models, limits=limits, max_batch_rows=args.max_batch_rows)
    if args.grpc_port is not None:
        from stratus.serving.grpc.server import attach  # grpcio is imported only when gRPC is asked for

        attach(app, args.host, args.grpc_port)
    config = uvicorn_config(app, args.host, args.port, limits)
    log.info("batching up to %d rows per ORT call; limits %s", args.max_batch_rows, limits)
    server = _DrainingServer(config, app, args.drain_s)
    server.run()
    return 0 if server.started else 1  # not started: startup failed (a gRPC port in use), already logged


if __name__ == "__main__":
    sys.exit(main())
