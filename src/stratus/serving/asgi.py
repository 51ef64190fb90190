"""The raw-ASGI plumbing the model server and the gateway share: types, error answers, the body reader.

Why one module: both processes answer the same client errors (a wrong method, an oversized or
disconnected body, a :class:`~stratus.errors.ServingError`) with the same status, JSON body and headers,
and a client talking to a model server directly or through the gateway must not tell the difference. Each
process used to define its own copy, and copies drift. Neither uses a web framework (the field notes:
that is what made a minimal V2 server several times faster), so this is the whole of their HTTP glue
above uvicorn (:mod:`stratus.serving.http_guard` is the part below it).

A request body is read by :func:`read_body` alone: its Content-Length is checked before a byte of the
body is read (413 over the limit, 503 with Retry-After past the process's byte budget), then the body
is read up to the limit, so a chunked body that grows past it is a 413 as soon as it does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

import orjson

from stratus.errors import ServingError
from stratus.serving.limits import RETRY_AFTER_S, BodyReservation
from stratus.serving.routes import method_not_allowed

__all__ = [
    "JSON",
    "AnswerError",
    "BodyRefusedError",
    "Header",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "declared_length",
    "error_answer",
    "header",
    "only",
    "read_body",
    "respond",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]

#: The Content-Type of every JSON answer.
JSON: Header = (b"content-type", b"application/json")


class AnswerError(Exception):
    """Raised inside a handler to answer at once with ``status``, a JSON ``body`` and extra ``headers``."""

    def __init__(self, status: int, body: Any, headers: Sequence[Header] = ()) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = list(headers)


class BodyRefusedError(AnswerError):
    """A request body the process will not read: ``status`` 400, 413 or 503, with a message and headers."""

    def __init__(self, status: int, message: str, headers: Sequence[Header] = ()) -> None:
        super().__init__(status, {"error": message}, headers)
        self.message = message


def only(method: str, allowed: str) -> None:
    """Answer 405, with the Allow header RFC 9110 requires, unless ``method`` is ``allowed``."""
    if method != allowed:
        raise AnswerError(405, {"error": method_not_allowed(method, allowed)}, [(b"allow", allowed.encode())])


def header(scope: Scope, name: bytes) -> bytes | None:
    """The request's first header called ``name`` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def error_answer(exc: Exception, log: logging.Logger, internal: str) -> tuple[int, bytes, list[Header]]:
    """The (status, body, headers) answering ``exc`` raised by a handler.

    An :class:`AnswerError` says its own answer and a :class:`ServingError` its status; anything else is
    a bug of ours: logged with its traceback and answered 500 with ``internal`` and the reason, so the
    process keeps serving.
    """
    if isinstance(exc, AnswerError):
        return exc.status, orjson.dumps(exc.body), [JSON, *exc.headers]
    if isinstance(exc, ServingError):
        return exc.status, orjson.dumps({"error": str(exc)}), [JSON]
    log.error("internal error", exc_info=exc)
    return 500, orjson.dumps({"error": f"{internal}: {exc}"}), [JSON]


async def respond(send: Send, status: int, headers: list[Header], body: bytes) -> None:
    """Send one whole answer: ``headers`` plus its Content-Length, then ``body``."""
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def declared_length(headers: Iterable[Header]) -> int | None:
    """The request's Content-Length, or None when it has none (chunked) or it is not a number."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def read_body(
    headers: Iterable[Header],
    receive: Receive,
    max_bytes: int,
    reservation: BodyReservation,
    who: str,
) -> bytes:
    """The whole request body, held against ``reservation``; ``who`` names the process in refusals.

    A Content-Length over ``max_bytes`` is a 413 before a byte of the body is read, and one that does
    not fit in the process's budget a 503 with Retry-After, so a client announcing 10^12 bytes costs
    nothing. A chunked body is counted as it arrives, with the same answers.
    """
    declared = declared_length(headers)
    if declared is not None:
        if declared > max_bytes:
            raise _too_big(who, max_bytes)
        if not reservation.grow(declared):
            raise _busy(who, reservation)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyRefusedError(400, "client disconnected before sending the whole body")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise _too_big(who, max_bytes)
        if not reservation.grow(size):
            raise _busy(who, reservation)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# The refusals are built only when raised: two exceptions made per request showed in the gateway's profile.
def _too_big(who: str, max_bytes: int) -> BodyRefusedError:
    return BodyRefusedError(413, f"request body exceeds {who}'s limit of {max_bytes} bytes")


def _busy(who: str, reservation: BodyReservation) -> BodyRefusedError:
    return BodyRefusedError(
        503,
        f"{who} is holding as many request bytes as it may ({reservation.limit} bytes); retry shortly",
        [(b"retry-after", RETRY_AFTER_S)],
    )
