"""uvicorn's httptools protocol with read timeouts and a connection cap, for the server and the gateway.

uvicorn bounds only the idle time *after* a response (``timeout_keep_alive``): a connection that never
sends a request, one that sends half a header, and a request whose body stops half way are held forever
(its ``limit_concurrency`` answers 503 only once a request's headers are complete, and never closes
anything). This protocol adds, per connection, one timer at a time:

- from the connection's opening (or the first byte of a later request) until its headers are complete:
  ``header_timeout_s``;
- from the end of the headers until the end of the body: ``body_timeout_s``;
- between requests: uvicorn's own keep-alive timer, set to ``keep_alive_s``.

A timer that fires closes the connection: silently when no byte of a request arrived (so a pooled client
that writes just then retries, as on any keep-alive close), with a 408 when a request was cut short and
no answer has started. An answer sent before its request's body was all read (a 413 or 503 from the
Content-Length) ends the connection after it, since the rest of that body is not worth reading. Past
``max_connections`` open connections, a new one is answered 503 with Retry-After at once. Either way
the connection "lingers" before closing, as nginx does: our side is shut for writing and whatever the
client still sends is dropped unparsed for up to ``LINGER_S``, so that the client reads the answer
instead of a reset.

Each response also leaves in one ``send``: uvicorn writes the status line and headers, then the body,
as two writes (two syscalls, two TCP segments); :class:`_OneWrite` holds the head until the body comes.
On the bench's shared core that is a measurable part of each answer (bench/RESULTS.md, the gateway's
profile), for the gateway twice (its answer to the client, and its request to the site, see upstream).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from stratus.serving.limits import RETRY_AFTER_S, ServingLimits

__all__ = ["guarded_protocol", "uvicorn_config"]

log = logging.getLogger("stratus.serving")

_FRESH, _HEADERS, _BODY, _ANSWERING, _LINGERING = "fresh", "headers", "body", "answering", "lingering"
# A head is joined to a body up to this size (one copy); a bigger body is written on its own after it.
_JOIN_MAX = 64 * 1024
# After an answer given before its request was read, how long what the client still sends is read and
# dropped before closing: closing on unread bytes sends a reset, which can destroy the answer in flight.
LINGER_S = 2.0


def _close_answer(status: bytes, message: bytes, extra: bytes = b"") -> bytes:
    body = b'{"error":"' + message + b'"}'
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n" + extra
        + b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip


_TIMED_OUT = {
    _HEADERS: _close_answer(b"408 Request Timeout", b"request headers not received in time"),
    _BODY: _close_answer(b"408 Request Timeout", b"request body not received in time"),
}
_TOO_MANY = _close_answer(
    b"503 Service Unavailable", b"too many open connections", b"retry-after: " + RETRY_AFTER_S + b"\r\n"
)


class _OneWrite:
    """One response cycle's view of the transport: the status line and headers (the first write after
    the response started) wait for the body's first write and go with it in one ``send``.

    A 100 Continue is written before the response starts, so it is never held. ``close`` flushes a
    held head first; everything else is the transport's own.
    """

    __slots__ = ("_cycle", "_head", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._held = False

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if len(data) <= _JOIN_MAX:
                self._transport.write(head + data)
                return
            self._transport.write(head)
        elif not self._held and self._cycle.response_started:
            self._held = True  # only the head, once: body writes of a streamed answer go out at once
            self._head = bytes(data)
            return
        self._transport.write(data)

    def close(self) -> None:
        if self._head is not None:
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _GuardedProtocol(HttpToolsProtocol):
    """One connection; ``limits`` is set on the subclass that :func:`guarded_protocol` makes."""

    limits: ClassVar[ServingLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _FRESH
        self._timer: asyncio.TimerHandle | None = None

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        self._timer = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _linger(self) -> None:
        self._arm(_LINGERING, min(LINGER_S, self.limits.body_timeout_s))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()

    def _expire(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        answered = self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete
        if self._phase in _TIMED_OUT and not answered:
            self.transport.write(_TIMED_OUT[self._phase])
        log.info("closing a connection: %s not complete in time", self._phase)
        self.transport.close()

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("refusing a connection: %d open (max_connections)", len(self.connections) - 1)
            transport.write(_TOO_MANY)
            self._linger()
            return
        # Counted from the opening: a connection that never sends a byte is closed like a slow header.
        self._arm(_FRESH, self.limits.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        if self._phase != _LINGERING:
            super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # -- httptools callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase == _FRESH and self._timer is not None:
            self._phase = _HEADERS  # the opening's clock keeps running: the first request gets no more
        else:
            self._arm(_HEADERS, self.limits.header_timeout_s)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self.cycle.transport = _OneWrite(self.transport, self.cycle)  # type: ignore[assignment]
        self._arm(_BODY, self.limits.body_timeout_s)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self._phase = _ANSWERING

    def on_response_complete(self) -> None:
        if self._phase == _BODY and self.cycle.response_complete and not self.transport.is_closing():
            # Answered before its body was read (413, 503): the rest is not worth reading. (A pipelined
            # request behind an answered one is in its body with its own cycle not answered: kept.)
            self.server_state.total_requests += 1
            self._linger()
            return
        super().on_response_complete()


def guarded_protocol(limits: ServingLimits) -> type[HttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to ``limits``."""
    return type("GuardedHttpToolsProtocol", (_GuardedProtocol,), {"limits": limits})


def uvicorn_config(app: Any, host: str, port: int, limits: ServingLimits, **options: Any) -> uvicorn.Config:
    """The uvicorn config both processes run with: uvloop, the guarded httptools protocol, no access log.

    ``options`` are passed on to :class:`uvicorn.Config` (``server_header``, for one).
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="auto",  # uvloop where installed
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]  # an int in uvicorn's hints only
        lifespan="on",
        access_log=False,
        # uvicorn's X-Forwarded-For middleware parses the client address with ipaddress on every request
        # (~15 µs); neither process uses the client address.
        proxy_headers=False,
        workers=1,
        **options,
    )
