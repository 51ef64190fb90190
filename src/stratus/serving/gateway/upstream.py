"""The gateway's HTTP/1.1 client: a keep-alive connection pool per site on asyncio protocols + httptools.

Why not aiohttp or httpx: on 2 cores their per-request CPU alone would exceed the gateway's whole
latency budget (+0.5 ms p50). A protocol object per connection, one ``write`` per request and the C
parser from httptools cost a few tens of microseconds. Bodies pass through as bytes, never re-encoded.

Failures are typed so the caller can decide to retry: :class:`UpstreamError` ``kind`` is ``refused``
(nothing listens), ``connect`` (other connect failure), ``reset`` (connection closed or reset before the
whole response), ``timeout`` or ``protocol`` (an unparseable response). All of them mean no response was
delivered, so a retry elsewhere is safe for an inference request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

import httptools

__all__ = ["ConnectionPool", "UpstreamError", "UpstreamResponse"]

# Bodies up to this size are joined to their head (one copy of the body, one syscall fewer).
_JOIN_MAX = 64 * 1024
_HEAD = b"%s %s HTTP/1.1\r\nhost: %s\r\n%scontent-length: %d\r\n\r\n"


class UpstreamError(Exception):
    """No response from a site; ``kind`` says why (see the module docstring)."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


@dataclass(slots=True)
class UpstreamResponse:
    """A whole response: status, headers as received (name, value) and the body bytes."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; serves one request at a time, parsed by httptools callbacks."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._keep_alive = True
        self.received = False
        self.closed = False

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError("protocol", f"unparseable response: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost fails any pending request

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.discard(self)
        if exc is None:
            self._fail(UpstreamError("reset", "connection closed before the response was complete"))
        else:
            self._fail(UpstreamError("reset", f"connection lost before the response was complete: {exc}"))

    # -- httptools callbacks ------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            waiter.set_result(UpstreamResponse(self._status, self._headers, body))

    # -- ours ---------------------------------------------------------------------------------------

    def _fail(self, error: UpstreamError) -> None:
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _time_out(self, timeout_s: float) -> None:
        self._fail(UpstreamError("timeout", f"no response within {timeout_s:g} s"))
        self.close()

    async def request(self, head: bytes, body: bytes, timeout_s: float) -> UpstreamResponse:
        """Send one whole request and wait for the whole response (or an UpstreamError).

        A small body goes with its head in one write (one syscall, one segment); a large one is written
        apart, so that it is not copied to be joined to its head.
        """
        transport = self.transport
        self.received = False  # nothing of this request's answer yet (a closed one is safe to resend)
        if transport is None or self.closed or transport.is_closing():
            raise UpstreamError("reset", "connection already closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[UpstreamResponse] = loop.create_future()
        self._waiter = waiter
        self._headers = []
        self._body = []
        if len(body) <= _JOIN_MAX:
            transport.write(head + body)
        else:
            transport.write(head)
            transport.write(body)
        timer = loop.call_later(timeout_s, self._time_out, timeout_s)
        try:
            return await waiter
        except asyncio.CancelledError:
            self.close()  # the response may still arrive: the connection cannot be reused
            raise
        finally:
            timer.cancel()

    @property
    def reusable(self) -> bool:
        return self._keep_alive and not self.closed

    def close(self) -> None:
        """Close now; a pending request fails with ``reset``."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class ConnectionPool:
    """Keep-alive connections to one ``host:port``; idle ones are reused newest first (warm, not stale).

    A request that fails on a *reused* connection before any byte of response arrived is sent once more
    on a fresh connection: the server may have closed that idle connection just as we wrote on it (its
    keep-alive timeout), which says nothing about the site's health.
    """

    def __init__(self, host: str, port: int, *, max_idle: int = 256) -> None:
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self._host_header = f"[{host}]:{port}".encode() if ":" in host else f"{host}:{port}".encode()
        self._idle: list[_Connection] = []
        self._closed = False
        self.in_flight = 0  # requests sent and not yet answered (or failed)

    async def _connect(self, timeout_s: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                _, protocol = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except ConnectionRefusedError:
            raise UpstreamError("refused", f"connection refused by {self.host}:{self.port}") from None
        except TimeoutError:
            raise UpstreamError(
                "timeout", f"no connection to {self.host}:{self.port} within {timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise UpstreamError("connect", f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return protocol

    async def request(
        self, method: bytes, target: bytes, headers: bytes, body: bytes, timeout_s: float
    ) -> UpstreamResponse:
        """One request; ``headers`` are ready-made ``name: value\\r\\n`` lines (no host, no length)."""
        head = _HEAD % (method, target, self._host_header, headers, len(body))
        self.in_flight += 1  # what a scale-down waits to reach 0 before it stops a drained replica
        try:
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await self._connect(timeout_s)
            try:
                response = await conn.request(head, body, timeout_s)
            except UpstreamError as exc:
                if not (reused and exc.kind == "reset" and not conn.received):
                    raise
                conn = await self._connect(timeout_s)
                response = await conn.request(head, body, timeout_s)
        finally:
            self.in_flight -= 1
        self._release(conn)
        return response

    def _release(self, conn: _Connection) -> None:
        if conn.reusable and not self._closed and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    def discard(self, conn: _Connection) -> None:
        """Forget a connection the server closed while it sat idle."""
        if conn in self._idle:
            self._idle.remove(conn)

    @property
    def idle(self) -> int:
        """Idle connections kept open."""
        return len(self._idle)

    def close(self) -> None:
        """Close every idle connection; connections in use close when their request ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
