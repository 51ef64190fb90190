"""What both gRPC fronts share: the service's name and methods, error codes, and server options.

The mapping from the REST status a :class:`~stratus.errors.ServingError` carries to a gRPC code is the one
place that decides what a client sees: 400 INVALID_ARGUMENT, 404 NOT_FOUND, 413 RESOURCE_EXHAUSTED, 503
UNAVAILABLE (which the gateway retries on another site, as it retries an HTTP 503), 504
DEADLINE_EXCEEDED, anything else INTERNAL.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from stratus.errors import ServingError
from stratus.serving.limits import ServingLimits

__all__ = [
    "FORWARDED",
    "LOCAL",
    "SERVICE",
    "Context",
    "grpc_code",
    "http_status",
    "method_path",
    "server_options",
]

SERVICE = "inference.GRPCInferenceService"
#: A call's context as a handler gets it (a string: grpc's class is generic for type checkers only).
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
#: Methods the gateway answers itself (about the gateway, not about a model).
LOCAL = ("ServerLive", "ServerReady", "ServerMetadata")
#: Methods about one model, named by field 1 of the request: routed to one of its sites.
FORWARDED = ("ModelReady", "ModelMetadata", "ModelInfer")

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_STATUSES = {code: status for status, code in _CODES.items()}


def method_path(method: str) -> str:
    """The HTTP/2 path of one method: ``/inference.GRPCInferenceService/ModelInfer``."""
    return f"/{SERVICE}/{method}"


def grpc_code(status: int) -> grpc.StatusCode:
    """The gRPC code for a REST status (see the module docstring)."""
    return _CODES.get(status, grpc.StatusCode.INTERNAL)


def http_status(code: grpc.StatusCode) -> int:
    """The REST status a gRPC code stands for, for the metrics both protocols share (OK is 200)."""
    if code == grpc.StatusCode.OK:
        return 200
    return _STATUSES.get(code, 500)


def server_options(limits: ServingLimits) -> list[tuple[str, int]]:
    """gRPC server options from the process's limits: a message over ``max_body_bytes`` is refused
    (RESOURCE_EXHAUSTED, from the frame's length prefix, before the message is read)."""
    return [
        ("grpc.max_receive_message_length", limits.max_body_bytes),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),  # a port in use is an error, not a second listener beside another one
    ]


async def listen(
    handlers: grpc.GenericRpcHandler, host: str, port: int, limits: ServingLimits, flag: str
) -> tuple[grpc.aio.Server, int]:
    """A started gRPC server for ``handlers`` on ``host:port`` and the port it got (for port 0).

    A port that cannot be bound is a ServingError naming the address and ``flag``, where it was set.
    """
    server = grpc.aio.server(options=server_options(limits))
    server.add_generic_rpc_handlers((handlers,))
    address = f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise ServingError(
            f"cannot listen for gRPC on {address} ({flag}): {exc}; is the port in use?", status=500
        ) from None
    await server.start()
    return server, bound
