"""HTTP through a health-checked name: resolve with dnspython, re-resolve and retry once on failure.

A client that caches a dead gateway's address keeps failing until its cache expires. This one asks the
responder directly (no cache between them), re-resolves when the answer's TTL has passed, and when a
connection to a gateway fails it re-resolves at once and retries the request once on another address,
avoiding the failed one for ``avoid_s`` (the responder needs a few checks to eject it). What is retried:

- connection refused or failed (the request never reached a gateway): always;
- a connection reset or closed before any response (the gateway died mid-request): only when the
  request is ``idempotent`` (the default; V2 inference is a pure function of its input).

Timeouts are not retried (the gateway may still be working on it) and a second failure propagates, so a
caller counts it. One client per thread, like ``http.client``: each keeps a connection per address.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from stratus.errors import StratusError
from stratus.serving.dns.config import DEFAULT_PORT
from stratus.serving.dns.zone import SRV_PREFIX

__all__ = ["ClientStats", "ResolveError", "ResolvingClient", "Response"]

Address = tuple[str, int]

# Errors meaning the request never reached a gateway, and those meaning it died without answering.
_NOT_SENT: tuple[type[BaseException], ...] = (ConnectionRefusedError,)
_NO_ANSWER: tuple[type[BaseException], ...] = (
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    http.client.RemoteDisconnected,
    http.client.IncompleteRead,
)


class ResolveError(StratusError):
    """The name could not be resolved to any address (NXDOMAIN, no answer, or no responder)."""


@dataclass
class Response:
    """A whole HTTP response and the gateway address that gave it."""

    status: int
    headers: dict[str, str]
    body: bytes
    address: Address


@dataclass
class ClientStats:
    """What the client did to ride through failures (for drills and benchmarks)."""

    resolutions: int = 0
    retries: int = 0
    failed_addresses: dict[Address, int] = field(default_factory=dict)


class ResolvingClient:
    """HTTP/1.1 to ``name``'s gateways as the responder at ``nameserver:dns_port`` lists them.

    ``port`` is the gateways' port (the local default gives every gateway the same port on its own
    loopback address); with None, the client reads addresses and ports from the SRV records instead.
    """

    def __init__(
        self,
        name: str,
        *,
        nameserver: str = "127.0.0.1",
        dns_port: int = DEFAULT_PORT,
        port: int | None = None,
        timeout_s: float = 30.0,
        dns_timeout_s: float = 2.0,
        avoid_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = dns.name.from_text(name)
        self.port = port
        self.timeout_s = timeout_s
        self.avoid_s = avoid_s
        self.clock = clock
        self.stats = ClientStats()
        self._resolver = dns.resolver.Resolver(configure=False)
        self._resolver.nameservers = [nameserver]
        self._resolver.port = dns_port
        self._resolver.lifetime = dns_timeout_s
        self._resolver.cache = None  # TTLs are honoured below, per answer
        self._addresses: list[Address] = []
        self._expires = 0.0
        self._turn = 0
        self._avoid: dict[Address, float] = {}
        self._connections: dict[Address, http.client.HTTPConnection] = {}

    # -- resolution ---------------------------------------------------------------------------------

    def resolve(self) -> list[Address]:
        """Ask the responder now; the addresses (and ports) it lists. ResolveError when it lists none."""
        self.stats.resolutions += 1
        try:
            if self.port is None:
                addresses, ttl = self._resolve_srv()
            else:
                answer = self._resolver.resolve(self.name, "A", raise_on_no_answer=False)
                if answer.rrset is None:
                    answer = self._resolver.resolve(self.name, "AAAA")
                assert answer.rrset is not None
                addresses, ttl = [(r.to_text(), self.port) for r in answer.rrset], answer.rrset.ttl
        except dns.exception.DNSException as exc:
            raise ResolveError(f"cannot resolve {self.name}: {exc}") from exc
        if not addresses:
            raise ResolveError(f"{self.name} resolved to no address")
        self._addresses = addresses
        self._expires = self.clock() + ttl
        for gone in set(self._connections) - set(addresses):
            self._connections.pop(gone).close()
        return list(addresses)

    def _resolve_srv(self) -> tuple[list[Address], int]:
        answer = self._resolver.resolve(dns.name.from_text(SRV_PREFIX, self.name), "SRV")
        assert answer.rrset is not None
        glue = {
            rrset.name: [r.to_text() for r in rrset]
            for rrset in answer.response.additional
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        }
        addresses: list[Address] = []
        for srv in answer.rrset:
            ips = glue.get(srv.target) or [r.to_text() for r in self._resolver.resolve(srv.target, "A")]
            addresses += [(ip, int(srv.port)) for ip in ips]
        return addresses, answer.rrset.ttl

    def addresses(self) -> list[Address]:
        """The current addresses, resolving first when the last answer's TTL has passed."""
        if not self._addresses or self.clock() >= self._expires:
            self.resolve()
        return list(self._addresses)

    def _pick(self, exclude: Address | None = None) -> Address:
        """Round-robin over the addresses not recently failed (all of them if every one has)."""
        now = self.clock()
        every = self.addresses()
        usable = [a for a in every if a != exclude and self._avoid.get(a, 0.0) <= now]
        if not usable:
            usable = [a for a in every if a != exclude] or every
        self._turn += 1
        return usable[self._turn % len(usable)]

    # -- requests -----------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        idempotent: bool = True,
    ) -> Response:
        """Send one request; on a connection failure re-resolve and retry once on another gateway."""
        address = self._pick()
        try:
            return self._send(address, method, path, body, headers)
        except _NOT_SENT + _NO_ANSWER as exc:
            if not idempotent and not isinstance(exc, _NOT_SENT):
                raise
            self._failed(address)
        self.stats.retries += 1
        self.resolve()
        return self._send(self._pick(exclude=address), method, path, body, headers)

    def _send(
        self, address: Address, method: str, path: str, body: bytes | None, headers: Mapping[str, str] | None
    ) -> Response:
        conn = self._connections.get(address)
        if conn is None:
            conn = http.client.HTTPConnection(address[0], address[1], timeout=self.timeout_s)
            self._connections[address] = conn
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            conn.close()
            self._connections.pop(address, None)
            raise
        if response.will_close:
            conn.close()
            self._connections.pop(address, None)
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, data, address)

    def _failed(self, address: Address) -> None:
        self._avoid[address] = self.clock() + self.avoid_s
        self.stats.failed_addresses[address] = self.stats.failed_addresses.get(address, 0) + 1

    def close(self) -> None:
        """Close every kept-alive connection."""
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    def __enter__(self) -> ResolvingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
