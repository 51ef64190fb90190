"""A raw-ASGI Open Inference Protocol (KServe V2) REST server for ONNX models.

No web framework: routing a dozen fixed paths by hand and encoding with orjson is what made a minimal V2
server ~8x faster than the framework-based peers (see the field notes). Bad client input is always a 400
(or 413 for an oversized body), never a 5xx. On SIGTERM the server drains: readiness fails at once so
load balancers stop sending, requests (in flight and new) are still served for ``drain_s``, then it exits 0.

Run: ``python -m stratus.serving.server --model NAME=path.onnx --host 127.0.0.1 --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import uvicorn

from stratus.errors import ServingError
from stratus.serving.metrics import Metrics
from stratus.serving.model import Model
from stratus.serving.protocol import encode_outputs, parse_infer_request

__all__ = ["DEFAULT_MAX_BODY_BYTES", "ServingApp", "main"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
_JSON = [(b"content-type", b"application/json")]
log = logging.getLogger("stratus.serving")


class _AnswerError(Exception):
    """Raised inside a handler to answer at once with ``status`` and a JSON ``body``."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body


class ServingApp:
    """The ASGI application: V2 health, metadata and inference for ``models``, plus ``/metrics``."""

    def __init__(self, models: Sequence[Model], *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.models = {model.name: model for model in models}
        self.max_body_bytes = max_body_bytes
        self.metrics = Metrics()
        self.draining = False
        self.version = metadata.version("stratus")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        route = "unknown"
        try:
            route, status, body, content_type = await self._dispatch(scope, receive)
        except _AnswerError as answer:
            status, body, content_type = answer.status, orjson.dumps(answer.body), _JSON
        except ServingError as exc:
            status, body, content_type = exc.status, orjson.dumps({"error": str(exc)}), _JSON
        except Exception as exc:  # a bug of ours: answer 500 with the reason, keep serving
            log.exception("internal error")
            status, body, content_type = 500, orjson.dumps({"error": f"internal error: {exc}"}), _JSON
        headers = [*content_type, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.metrics.observe(route, status, time.perf_counter() - started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(self, scope: Scope, receive: Receive) -> tuple[str, int, bytes, list[Any]]:
        """Route by hand; returns (route template for metrics, status, body, content-type header)."""
        method: str = scope["method"]
        parts = [p for p in scope["path"].split("/") if p]
        if parts == ["metrics"]:
            self._only(method, "GET")
            return (
                "/metrics",
                200,
                self.metrics.render(),
                [(b"content-type", self.metrics.content_type.encode())],
            )
        if not parts or parts[0] != "v2":
            raise _AnswerError(
                404, {"error": f"no route {scope['path']!r}: this server speaks the V2 protocol"}
            )
        route, status, doc = await self._v2(method, parts[1:], scope, receive)
        return route, status, orjson.dumps(doc), _JSON

    @staticmethod
    def _only(method: str, allowed: str) -> None:
        if method != allowed:
            raise _AnswerError(405, {"error": f"method {method} not allowed here; use {allowed}"})

    async def _v2(
        self, method: str, parts: list[str], scope: Scope, receive: Receive
    ) -> tuple[str, int, Any]:
        if not parts:
            self._only(method, "GET")
            return "/v2", 200, {"name": "stratus", "version": self.version, "extensions": []}
        if parts == ["health", "live"]:
            self._only(method, "GET")
            return "/v2/health/live", 200, {"live": True}
        if parts == ["health", "ready"]:
            self._only(method, "GET")
            ready = not self.draining
            return "/v2/health/ready", 200 if ready else 503, {"ready": ready}
        if parts[0] != "models" or len(parts) < 2:
            raise _AnswerError(404, {"error": f"no route {scope['path']!r}"})
        model = self._model(parts[1])
        rest = parts[2:]
        if len(rest) >= 2 and rest[0] == "versions":
            if rest[1] != model.version:
                raise ServingError(f"model {model.name!r} has no version {rest[1]!r}; it has ['1']")
            rest = rest[2:]
        if not rest:
            self._only(method, "GET")
            return "/v2/models/{m}", 200, model.metadata()
        if rest == ["ready"]:
            self._only(method, "GET")
            return "/v2/models/{m}/ready", 200, {"name": model.name, "ready": True}
        if rest == ["infer"]:
            self._only(method, "POST")
            body = await self._read_body(scope, receive)
            return "/v2/models/{m}/infer", 200, await self._infer(model, body)
        raise _AnswerError(404, {"error": f"no route {scope['path']!r}"})

    def _model(self, name: str) -> Model:
        model = self.models.get(name)
        if model is None:
            raise ServingError(f"unknown model {name!r}: this server serves {sorted(self.models)}")
        return model

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The whole body, refusing with 413 as soon as it is known to exceed the limit."""
        too_big = _AnswerError(
            413, {"error": f"request body exceeds the limit of {self.max_body_bytes} bytes"}
        )
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                raise too_big
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _AnswerError(400, {"error": "client disconnected before sending the whole body"})
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _infer(self, model: Model, body: bytes) -> dict[str, Any]:
        # The body is JSON whatever the Content-Type says: tritonclient sends none at all.
        request = parse_infer_request(body, model.inputs, model.output_names)
        # ORT releases the GIL; a worker thread keeps health checks answering during a long call.
        specs, arrays = await asyncio.to_thread(model.run, request.inputs, request.outputs)
        response: dict[str, Any] = {
            "model_name": model.name,
            "model_version": model.version,
            "outputs": encode_outputs(specs, arrays),
        }
        if request.id is not None:
            response["id"] = request.id
        return response


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


def main(argv: Sequence[str] | None = None) -> int:
    """Load the models and serve until stopped; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m stratus.serving.server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", action="append", type=_parse_model, required=True, metavar="NAME=PATH")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--drain-s", type=float, default=5.0, help="seconds to keep serving after SIGTERM")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--intra-op-threads", type=int, default=None, help="ORT threads per call")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        models = [Model(name, path, intra_op_threads=args.intra_op_threads) for name, path in args.model]
    except ServingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    app = ServingApp(models, max_body_bytes=args.max_body_bytes)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, loop="auto", access_log=False, lifespan="on", workers=1
    )
    _DrainingServer(config, app, args.drain_s).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
