"""The DNS responder process: health checks of the gateways, and the zone served over UDP and TCP.

Health checks are the gateway's own (:class:`~stratus.serving.gateway.health.HealthChecker` on
:class:`~stratus.serving.gateway.health.SiteState`): ``GET /v2/health/ready`` on each gateway every
``interval_s`` with ``timeout_s``; ``unhealthy_threshold`` failures in a row (or one 503, which a
draining gateway answers) take a gateway out of the answers, ``healthy_threshold`` passes bring it back.
One round runs before the sockets open, so the first answer already reflects health.

Queries are untrusted input: anything that does not parse is answered FORMERR (when it has a header) or
dropped, never an exception that ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import struct
import time

import dns.exception
import dns.flags
import dns.message
import dns.rcode

from stratus.serving.dns.config import DnsConfig, GatewayAddress
from stratus.serving.dns.zone import Zone
from stratus.serving.gateway.config import OutlierDetection, Upstream
from stratus.serving.gateway.health import HealthChecker, SiteState

__all__ = ["DnsResponder", "run"]

log = logging.getLogger("stratus.dns")

_UDP_PLAIN_MAX = 512  # a UDP answer to a query without EDNS (RFC 1035)
_TCP_IDLE_S = 10.0  # a TCP client that sends nothing for this long is disconnected


class DnsResponder:
    """Health-checks ``config.gateways`` and answers for ``config.name`` on UDP and TCP."""

    def __init__(self, config: DnsConfig) -> None:
        self.config = config
        self.zone = Zone(config)
        self.sites = [
            SiteState(Upstream(name=g.name, url=g.url), config.health, OutlierDetection())
            for g in config.gateways
        ]
        self._by_name = {g.name: g for g in config.gateways}
        self.checker = HealthChecker(self.sites, config.health)
        # The serial moves whenever the answer changes, so a zone transfer or an observer can see it;
        # it starts from the clock so a restarted responder never goes back.
        self.serial = int(time.time())
        self._last_healthy: tuple[str, ...] | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self.port = config.port

    def healthy(self) -> list[GatewayAddress]:
        """The gateways health checks pass on now, in config order."""
        now = time.monotonic()
        names = tuple(site.name for site in self.sites if site.routable(now))
        if names != self._last_healthy:
            if self._last_healthy is not None:
                self.serial += 1
            log.info(
                "answering %s with %s", self.config.name, ", ".join(names) or "every gateway (none healthy)"
            )
            self._last_healthy = names
        return [self._by_name[name] for name in names]

    def handle(self, wire: bytes, *, udp: bool) -> bytes | None:
        """The reply to one query message; None when it gets none. Over UDP an answer too big for the
        client's buffer (512 bytes, or its EDNS size) is sent empty with TC set, so it asks over TCP."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # untrusted bytes: dnspython raises many kinds for malformed input
            return _formerr(wire)
        if query.flags & dns.flags.QR:
            return None  # a response sent to us: never answer one (no loops)
        if len(query.question) != 1:
            return _formerr(wire)
        response = self.zone.answer(query, self.healthy(), self.serial)
        if not udp:
            return response.to_wire()
        limit = max(query.payload, _UDP_PLAIN_MAX) if query.edns >= 0 else _UDP_PLAIN_MAX
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()
            response.authority.clear()
            response.additional.clear()
            response.flags |= dns.flags.TC  # the client retries over TCP
            return response.to_wire()

    async def start(self) -> None:
        """Check every gateway once, then listen on UDP and TCP (port 0: one free port for both)."""
        await self.checker.start()
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(self.config.host, self.config.port), family=family
        )
        self._udp = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        self._tcp = await asyncio.start_server(self._serve_tcp, self.config.host, self.port, family=family)
        log.info(
            "dns responder for %s on udp+tcp %s:%d; gateways %s; ttl %d s",
            self.config.name,
            self.config.host,
            self.port,
            ", ".join(f"{g.name}={g.url}" for g in self.config.gateways),
            self.config.ttl_s,
        )

    async def stop(self) -> None:
        """Close the sockets, then stop the health checks."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        await self.checker.stop()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """RFC 1035 4.2.2: each message prefixed by its two-byte length; several per connection."""
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), _TCP_IDLE_S)
                body = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]), _TCP_IDLE_S)
                reply = self.handle(body, udp=False)
                if reply is not None:
                    writer.write(struct.pack("!H", len(reply)) + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, responder: DnsResponder) -> None:
        self.responder = responder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = self.responder.handle(data, udp=True)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


def _formerr(wire: bytes) -> bytes | None:
    """A bare FORMERR header echoing the query's id and opcode; None if not even a header came."""
    if len(wire) < 12:
        return None
    query_id, flags = struct.unpack("!HH", wire[:4])
    if flags & 0x8000:
        return None  # a response: never answer
    return struct.pack("!HHHHHH", query_id, 0x8000 | (flags & 0x7800) | dns.rcode.FORMERR, 0, 0, 0, 0)


async def _serve(config: DnsConfig) -> None:
    responder = DnsResponder(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await responder.start()
    try:
        await stop.wait()
    finally:
        log.info("dns responder for %s stopping", config.name)
        await responder.stop()


def run(config: DnsConfig) -> None:
    """Serve ``config`` until SIGTERM or SIGINT, then close the sockets and return (exit 0)."""
    asyncio.run(_serve(config))
