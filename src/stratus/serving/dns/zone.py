"""The zone's answers: plain logic from a query and the set of healthy gateways to a response.

The responder is authoritative for the deployment's name (the zone apex) and the few names under it:

- ``<name>`` A/AAAA: the healthy gateways' addresses, rotated per answer so clients that take the first
  record spread out; SOA and NS as for any zone apex.
- ``_http._tcp.<name>`` SRV: the healthy gateways with their ports (for gateways on different ports),
  each target ``<gateway>.<name>`` with its address in the additional section.
- ``<gateway>.<name>`` A/AAAA: that gateway's address whatever its health (it names one machine).
- ``ns.<name>``: the responder's own address.

Any other name under the zone is NXDOMAIN and an existing name without the asked type is NODATA, both
with the SOA (whose minimum is the TTL, so negative answers are cached no longer than positive ones).
Names outside the zone, and classes other than IN, are REFUSED: this is not a recursive resolver.

When no gateway is healthy the answer lists all of them (fail open), as Route 53 does for a record set
whose health checks all fail and Cloudflare does with a fallback pool: a responder cut off from healthy
gateways must not take the whole name off the air, and a client of dead gateways fails either way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from stratus.serving.dns.config import DnsConfig, GatewayAddress

__all__ = ["SRV_PREFIX", "Zone", "serving"]

SRV_PREFIX = "_http._tcp"
# The SOA's timers only matter to secondaries, which this zone has none of; the values are the usual ones.
_SOA_TIMERS = "3600 600 86400"
# NS and SOA change only with the config, so they may be cached longer than the addresses.
_NS_TTL_S = 60


def serving(healthy: Sequence[GatewayAddress], every: Sequence[GatewayAddress]) -> list[GatewayAddress]:
    """The gateways an answer lists: the healthy ones, or every one when none is (fail open)."""
    return list(healthy) if healthy else list(every)


class Zone:
    """Answers queries for ``config.name``; ``answer`` is pure apart from the rotation counter."""

    def __init__(self, config: DnsConfig) -> None:
        self.config = config
        self.origin = dns.name.from_text(config.name)
        self.srv_name = dns.name.from_text(SRV_PREFIX, self.origin)
        self.ns_name = dns.name.from_text("ns", self.origin)
        self.by_host = {dns.name.from_text(g.name, self.origin): g for g in config.gateways}
        listen = _ip_or_none(config.host)
        self.ns_address = None if listen is None or listen.is_unspecified else listen
        self._turn = 0

    def answer(
        self, query: dns.message.Message, healthy: Sequence[GatewayAddress], serial: int
    ) -> dns.message.Message:
        """The response to ``query`` (one question, opcode QUERY) given the healthy gateways now."""
        response = dns.message.make_response(query)
        response.flags &= ~dns.flags.RA
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        if question.rdclass != dns.rdataclass.IN or not qname.is_subdomain(self.origin):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        records = self._records(qname, serving(healthy, self.config.gateways), serial)
        if records is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self._soa(serial))
            return response
        wanted = [r for r in records if qtype in (r.rdtype, dns.rdatatype.ANY)]
        if not wanted:
            response.authority.append(self._soa(serial))
            return response
        response.answer.extend(wanted)
        for rrset in wanted:
            response.additional.extend(self._glue(rrset))
        return response

    # -- the names ----------------------------------------------------------------------------------

    def _records(
        self, qname: dns.name.Name, gateways: list[GatewayAddress], serial: int
    ) -> list[dns.rrset.RRset] | None:
        """Every record set at ``qname``; None when the name does not exist."""
        ttl = self.config.ttl_s
        if qname == self.origin:
            self._turn += 1
            turn = self._turn % len(gateways)
            rotated = gateways[turn:] + gateways[:turn]
            ns = dns.rrset.from_text(self.origin, _NS_TTL_S, "IN", "NS", self.ns_name.to_text())
            return [*_addresses(self.origin, ttl, [g.ip for g in rotated]), self._soa(serial), ns]
        if qname == self.srv_name:
            srv = [f"0 1 {g.port} {dns.name.from_text(g.name, self.origin)}" for g in gateways]
            return [dns.rrset.from_text_list(qname, ttl, "IN", "SRV", srv)]
        if qname in self.by_host:
            return _addresses(qname, ttl, [self.by_host[qname].ip])
        if qname == self.ns_name:
            return _addresses(qname, _NS_TTL_S, [self.ns_address] if self.ns_address else [])
        return None

    def _glue(self, rrset: dns.rrset.RRset) -> list[dns.rrset.RRset]:
        """Addresses of the names an NS or SRV answer points at, so the client need not ask again."""
        targets: list[dns.name.Name] = []
        if rrset.rdtype == dns.rdatatype.NS:
            targets = [self.ns_name]
        elif rrset.rdtype == dns.rdatatype.SRV:
            targets = [rdata.target for rdata in rrset]
        glue: list[dns.rrset.RRset] = []
        for target in targets:
            if target in self.by_host:
                glue += _addresses(target, self.config.ttl_s, [self.by_host[target].ip])
            elif target == self.ns_name and self.ns_address is not None:
                glue += _addresses(target, _NS_TTL_S, [self.ns_address])
        return glue

    def _soa(self, serial: int) -> dns.rrset.RRset:
        ttl = self.config.ttl_s
        text = f"{self.ns_name} hostmaster.{self.origin} {serial} {_SOA_TIMERS} {ttl}"
        return dns.rrset.from_text(self.origin, ttl, "IN", "SOA", text)


def _addresses(
    name: dns.name.Name, ttl: int, ips: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> list[dns.rrset.RRset]:
    """An A and/or an AAAA record set for ``ips`` (none for an empty list), in the order given."""
    out: list[dns.rrset.RRset] = []
    for version, rdtype in ((4, "A"), (6, "AAAA")):
        texts = [str(ip) for ip in ips if ip.version == version]
        if texts:
            out.append(dns.rrset.from_text_list(name, ttl, "IN", rdtype, texts))
    return out


def _ip_or_none(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
