"""What the DNS responder serves: the deployment's name, its gateways' addresses, TTL and health knobs.

Gateways are given as ``[NAME=]IP:PORT``. An IP address, not a host name, because an A record carries an
address; on the local default the gateways share one port and differ by loopback address (Linux routes
all of 127.0.0.0/8 to ``lo``, so 127.0.0.1, 127.0.0.2, ... need no setup). Every parse error is a
:class:`ConfigError` naming the flag and what is expected.
"""

from __future__ import annotations

import ipaddress
import re

import dns.exception
import dns.name
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stratus.errors import ConfigError
from stratus.serving.gateway.config import HealthCheck

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TTL_S",
    "DnsConfig",
    "GatewayAddress",
    "IPAddress",
    "parse_gateway",
    "parse_listen",
]

# Unprivileged, so the responder runs as any user; 53 needs root (or CAP_NET_BIND_SERVICE).
DEFAULT_PORT = 15353
# Short enough that a caching resolver follows an ejection within ~TTL + detection (2 checks × 0.25 s),
# long enough that a client under load does not ask once per request.
DEFAULT_TTL_S = 2

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# A DNS label that is also a readable gateway name; "ns" names the responder itself.
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_RESERVED = frozenset({"ns"})


class GatewayAddress(BaseModel):
    """One gateway: a DNS label naming it, the address clients connect to, and its port."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    ip: IPAddress
    port: int = Field(ge=1, le=65535)

    @field_validator("name")
    @classmethod
    def _label(cls, name: str) -> str:
        if not _LABEL.match(name) or name in _RESERVED:
            raise ValueError(
                f"gateway name {name!r} must be a DNS label (lowercase letters, digits, inner hyphens, "
                f"at most 63 characters) other than {', '.join(sorted(_RESERVED))}"
            )
        return name

    @property
    def url(self) -> str:
        """Where its health is checked from here (IPv6 literals in brackets)."""
        host = f"[{self.ip}]" if self.ip.version == 6 else str(self.ip)
        return f"http://{host}:{self.port}"


class DnsConfig(BaseModel):
    """The responder: authoritative for ``name`` (and names under it), answering with healthy gateways."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    gateways: list[GatewayAddress] = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    ttl_s: int = Field(default=DEFAULT_TTL_S, ge=0, le=86400)
    health: HealthCheck = HealthCheck()

    @field_validator("name")
    @classmethod
    def _absolute(cls, name: str) -> str:
        return zone_name(name).to_text()

    @field_validator("gateways")
    @classmethod
    def _unique(cls, gateways: list[GatewayAddress]) -> list[GatewayAddress]:
        names = [g.name for g in gateways]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"two gateways are named {duplicate!r}; names must be unique")
        return gateways


def zone_name(text: str) -> dns.name.Name:
    """``text`` as an absolute, lowercase DNS name with at least two labels; ValueError otherwise."""
    try:
        name = dns.name.from_text(text.strip().lower())
    except dns.exception.DNSException as exc:
        raise ValueError(f"{text!r} is not a DNS name: {exc}") from None
    if len(name.labels) < 3:  # two labels and the root
        raise ValueError(f"{text!r} is too short: expected a name like fraud.stratus.local")
    return name


def parse_gateway(text: str, index: int) -> GatewayAddress:
    """``[NAME=]IP:PORT`` (``[IPv6]:PORT`` for IPv6); unnamed gateways are ``gw-<index>`` (from 1)."""
    expected = "expected [NAME=]IP:PORT, e.g. gw-1=127.0.0.1:8080 or [::1]:8080"
    name, sep, rest = text.partition("=")
    if not sep:
        name, rest = f"gw-{index}", text
    host, colon, port_text = rest.rpartition(":")
    if not colon or not host:
        raise ConfigError(f"{text!r}: {expected}", field="--gateway")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(
            f"{text!r}: {host!r} is not an IP address (A records carry addresses, not host names); "
            + expected,
            field="--gateway",
        ) from None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"{text!r}: port {port_text!r} is not 1-65535; {expected}", field="--gateway")
    try:
        return GatewayAddress(name=name, ip=ip, port=int(port_text))
    except ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{text!r}: {reason}", field="--gateway") from None


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[IPv6]:PORT``) where the responder listens; port 0 picks a free one."""
    host, colon, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = ""
    if not colon or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(
            f"{text!r}: expected IP:PORT, e.g. 127.0.0.1:{DEFAULT_PORT} (ports below 1024 need root)",
            field="--listen",
        )
    return host, int(port_text)
