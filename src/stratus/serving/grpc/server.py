"""The model server's gRPC listener: ``inference.GRPCInferenceService`` beside the REST routes.

It runs on the REST server's event loop and serves from the same :class:`~stratus.serving.server.ServingApp`
(models, micro-batchers, byte budget, metrics, drain state), so that REST and gRPC requests share ORT
calls and limits. :func:`attach` hooks it into the app's lifespan: it starts with the app and stops (after
``grace_s`` for calls in flight) before the batchers close.

Liveness and readiness follow REST: ServerReady is false once a drain began. ModelReady is false for a
model this server does not serve (as Triton answers; both V2 clients read that as "not ready"), while
ModelMetadata and ModelInfer for it are NOT_FOUND with the REST error's message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from stratus.errors import ServingError
from stratus.serving.limits import RETRY_AFTER_S
from stratus.serving.model import Model
from stratus.serving.server import ServingApp

from . import grpc_predict_v2_pb2 as pb
from .service import SERVICE, Context, grpc_code, listen, method_path
from .tensors import encode_response, parse_request

__all__ = ["GrpcListener", "attach"]

log = logging.getLogger("stratus.serving")
Handler = Callable[[Any, Context], Awaitable[Any]]


class GrpcListener:
    """The gRPC server of one model-server process, on ``host:port`` (port 0: any free one)."""

    def __init__(self, app: ServingApp, host: str, port: int, *, grace_s: float = 1.0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.grace_s = grace_s
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        """Bind and start serving; a port that cannot be bound is a ServingError naming it."""
        server, self.port = await listen(
            self._handlers(), self.host, self.port, self.app.limits, "--grpc-port"
        )
        self._server = server
        log.info("gRPC (%s) on %s:%d", SERVICE, self.host, self.port)

    async def stop(self) -> None:
        """Refuse new calls, give calls in flight ``grace_s`` to finish, then close (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(self.grace_s)

    def _handlers(self) -> grpc.GenericRpcHandler:
        methods: dict[str, tuple[Handler, Any]] = {
            "ServerLive": (self.server_live, pb.ServerLiveRequest),
            "ServerReady": (self.server_ready, pb.ServerReadyRequest),
            "ServerMetadata": (self.server_metadata, pb.ServerMetadataRequest),
            "ModelReady": (self.model_ready, pb.ModelReadyRequest),
            "ModelMetadata": (self.model_metadata, pb.ModelMetadataRequest),
            # Bytes in: the request's size is held against the byte budget before it is decoded.
            "ModelInfer": (self.model_infer, None),
        }
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                method: grpc.unary_unary_rpc_method_handler(
                    self._observed(method, handler),
                    request_deserializer=None if request is None else request.FromString,
                    response_serializer=_serialize,
                )
                for method, (handler, request) in methods.items()
            },
        )

    def _observed(self, method: str, handler: Handler) -> Handler:
        """``handler`` with its errors turned into gRPC codes and every call counted in the metrics."""
        route = method_path(method)
        metrics = self.app.metrics

        async def call(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            status = 200
            try:
                return await handler(request, context)
            except ServingError as exc:
                status, message = exc.status, str(exc)
            except Exception as exc:  # a bug of ours: answer INTERNAL with the reason, keep serving
                log.exception("internal error in %s", route)
                status, message = 500, f"internal error: {exc}"
            finally:
                metrics.observe(route, status, time.perf_counter() - started)
            await context.abort(grpc_code(status), message)
            raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

        return call

    def _model(self, name: str, version: str) -> Model:
        """The model named by a request; NOT_FOUND (with the REST message) for another name or version."""
        try:
            model = self.app._model(name)  # the REST lookup, for the same message
        except ServingError as exc:
            raise ServingError(str(exc), status=404) from None
        if version and version != model.version:
            message = f"model {model.name!r} has no version {version!r}; it has ['{model.version}']"
            raise ServingError(message, status=404)
        return model

    # -- the methods ----------------------------------------------------------------------------------

    async def server_live(self, request: Any, context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any, context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=not self.app.draining)

    async def server_metadata(self, request: Any, context: Context) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name="stratus", version=self.app.version, extensions=[])

    async def model_ready(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        model = self.app.models.get(request.name)
        ready = model is not None and request.version in ("", model.version)
        return pb.ModelReadyResponse(ready=ready)

    async def model_metadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        model = self._model(request.name, request.version)
        response = pb.ModelMetadataResponse(
            name=model.name, versions=[model.version], platform=model.platform
        )
        for spec in model.inputs:
            response.inputs.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
        for spec in model.outputs:
            response.outputs.add(name=spec.name, datatype=spec.datatype, shape=spec.shape)
        return response

    async def model_infer(self, data: bytes, context: Context) -> pb.ModelInferResponse:
        reservation = self.app.budget.reserve()
        try:
            if not reservation.grow(len(data)):
                context.set_trailing_metadata((("retry-after", RETRY_AFTER_S.decode()),))
                raise ServingError(
                    f"the model server is holding as many request bytes as it may ({reservation.limit} "
                    "bytes); retry shortly",
                    status=503,
                )
            try:
                request = pb.ModelInferRequest.FromString(data)
            except Exception as exc:  # protobuf's DecodeError, or upb's
                raise ServingError(f"request is not a valid ModelInferRequest: {exc}", status=400) from None
            model = self._model(request.model_name, request.model_version)
            inputs, outputs = parse_request(request, model.inputs, model.output_names)
            specs, arrays = await self.app.batchers[model.name].run(inputs, outputs)
            return encode_response(model.name, model.version, request.id, specs, arrays)
        finally:
            reservation.release()


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def attach(app: ServingApp, host: str, port: int) -> GrpcListener:
    """A gRPC listener for ``app`` that starts and stops with the app's lifespan."""
    listener = GrpcListener(app, host, port)
    app.on_startup.append(listener.start)
    app.on_shutdown.append(listener.stop)
    return listener
