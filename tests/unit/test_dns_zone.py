"""The DNS responder's answers, from a query and a set of healthy gateways (no sockets, no clock)."""

from __future__ import annotations

import ipaddress

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from stratus.serving.dns import DnsConfig, DnsResponder, GatewayAddress
from stratus.serving.dns.zone import Zone

NAME = "fraud.stratus.local."


def gateway(name: str, ip: str, port: int = 8080) -> GatewayAddress:
    return GatewayAddress(name=name, ip=ipaddress.ip_address(ip), port=port)


GW1, GW2, GW3 = gateway("gw-1", "127.0.0.1"), gateway("gw-2", "127.0.0.2"), gateway("gw-3", "::1", 9090)
CONFIG = DnsConfig(name="Fraud.Stratus.Local", gateways=[GW1, GW2, GW3], ttl_s=3)


def ask(
    zone: Zone, name: str, rdtype: str, healthy: list[GatewayAddress], **kw: object
) -> dns.message.Message:
    return zone.answer(dns.message.make_query(name, rdtype, **kw), healthy, 7)  # type: ignore[arg-type]


def texts(response: dns.message.Message, section: str = "answer") -> set[str]:
    return {str(rdata) for rrset in getattr(response, section) for rdata in rrset}


def test_the_name_lists_the_healthy_gateways_only_with_the_configured_ttl() -> None:
    zone = Zone(CONFIG)
    response = ask(zone, NAME, "A", [GW1, GW3])
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert texts(response) == {"127.0.0.1"}
    assert [rrset.ttl for rrset in response.answer] == [3]
    assert texts(ask(zone, NAME, "AAAA", [GW1, GW3])) == {"::1"}


def test_no_healthy_gateway_fails_open_to_every_gateway() -> None:
    response = ask(Zone(CONFIG), NAME, "A", [])
    assert texts(response) == {"127.0.0.1", "127.0.0.2"}


def test_the_order_rotates_so_first_record_clients_spread_out() -> None:
    zone = Zone(CONFIG)
    firsts = {str(next(iter(ask(zone, NAME, "A", [GW1, GW2]).answer[0]))) for _ in range(4)}
    assert firsts == {"127.0.0.1", "127.0.0.2"}


def test_unknown_names_in_the_zone_are_nxdomain_with_the_soa_for_negative_caching() -> None:
    response = ask(Zone(CONFIG), "nope.fraud.stratus.local.", "A", [GW1])
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.flags & dns.flags.AA
    (soa,) = response.authority
    assert soa.rdtype == dns.rdatatype.SOA
    rdata = next(iter(soa))
    assert (rdata.serial, rdata.minimum, soa.ttl) == (7, 3, 3)
    assert str(rdata.mname) == "ns.fraud.stratus.local."


def test_names_outside_the_zone_are_refused_not_answered() -> None:
    for name in ("example.com.", "stratus.local.", "fraud.stratus.local.evil.com."):
        response = ask(Zone(CONFIG), name, "A", [GW1])
        assert response.rcode() == dns.rcode.REFUSED, name
        assert not response.answer
        assert not response.flags & dns.flags.AA


def test_an_existing_name_without_the_type_is_nodata() -> None:
    response = ask(Zone(CONFIG), NAME, "MX", [GW1])
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.answer
    assert [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]


def test_soa_and_ns_at_the_apex_with_the_responder_address_as_glue() -> None:
    zone = Zone(CONFIG)
    assert texts(ask(zone, NAME, "NS", [GW1])) == {"ns.fraud.stratus.local."}
    assert texts(ask(zone, NAME, "NS", [GW1]), "additional") == {"127.0.0.1"}
    assert texts(ask(zone, "ns.fraud.stratus.local.", "A", [])) == {"127.0.0.1"}
    (soa,) = ask(zone, NAME, "SOA", [GW1]).answer
    assert next(iter(soa)).serial == 7


def test_srv_carries_ports_of_healthy_gateways_and_their_addresses() -> None:
    response = ask(Zone(CONFIG), "_http._tcp.fraud.stratus.local.", "SRV", [GW2, GW3])
    assert texts(response) == {"0 1 8080 gw-2.fraud.stratus.local.", "0 1 9090 gw-3.fraud.stratus.local."}
    assert texts(response, "additional") == {"127.0.0.2", "::1"}


def test_each_gateway_name_answers_its_own_address_whatever_its_health() -> None:
    response = ask(Zone(CONFIG), "gw-2.fraud.stratus.local.", "A", [GW1])
    assert texts(response) == {"127.0.0.2"}


def test_other_classes_are_refused_and_other_opcodes_not_implemented() -> None:
    zone = Zone(CONFIG)
    chaos = ask(zone, NAME, "TXT", [GW1], rdclass=dns.rdataclass.CH)
    assert chaos.rcode() == dns.rcode.REFUSED
    notify = dns.message.make_query(NAME, "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert zone.answer(notify, [GW1], 1).rcode() == dns.rcode.NOTIMP


def test_malformed_queries_get_formerr_and_garbage_gets_nothing() -> None:
    responder = DnsResponder(CONFIG)
    query = dns.message.make_query(NAME, "A").to_wire()
    reply = responder.handle(query[:12] + b"\xff\xff", udp=True)
    assert reply is not None
    parsed = dns.message.from_wire(reply)
    assert parsed.rcode() == dns.rcode.FORMERR
    assert parsed.id == dns.message.from_wire(query).id
    assert responder.handle(b"\x00\x01", udp=True) is None
    response = dns.message.make_response(dns.message.make_query(NAME, "A")).to_wire()
    assert responder.handle(response, udp=True) is None  # never answer an answer


def test_an_answer_too_big_for_udp_is_truncated_so_the_client_retries_over_tcp() -> None:
    many = [gateway(f"gw-{i}", f"2001:db8::{i:x}") for i in range(1, 41)]
    responder = DnsResponder(DnsConfig(name=NAME, gateways=many))
    query = dns.message.make_query(NAME, "AAAA", use_edns=False).to_wire()
    udp = dns.message.from_wire(responder.handle(query, udp=True) or b"")
    assert udp.flags & dns.flags.TC
    assert not udp.answer
    reply = responder.handle(query, udp=False)
    assert reply is not None
    assert len(reply) > 512
    assert len(texts(dns.message.from_wire(reply))) == 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gateway", "gw.example.com:8080"], "'gw.example.com' is not an IP address"),
        (["--gateway", "127.0.0.1"], "expected [NAME=]IP:PORT"),
        (["--gateway", "127.0.0.1:99999"], "port '99999' is not 1-65535"),
        (["--gateway", "NS=127.0.0.1:80"], "must be a DNS label"),
        (["--gateway", "a=127.0.0.1:80", "--gateway", "a=127.0.0.2:80"], "two gateways are named 'a'"),
        (
            ["--gateway", "127.0.0.1:80", "--listen", "localhost:53"],
            "--listen: 'localhost:53': expected IP:PORT",
        ),
        (["--gateway", "127.0.0.1:80", "--ttl", "-1"], "--ttl: "),
        (["--gateway", "127.0.0.1:80", "--interval", "0"], "--interval: "),
    ],
)
def test_flag_mistakes_exit_2_naming_the_flag(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from stratus.serving.dns.cli import main

    assert main(["--name", "fraud.stratus.local", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err


def test_a_name_too_short_to_be_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match=r"too short: expected a name like fraud\.stratus\.local"):
        DnsConfig(name="local", gateways=[GW1])


def test_the_supervisor_command_round_trips_to_the_same_config() -> None:
    from stratus.serving.dns import build_config, responder_command

    argv = responder_command(CONFIG)
    assert argv[1:3] == ["-m", "stratus.serving.dns"]
    assert build_config(argv[3:]) == CONFIG


def test_a_port_that_cannot_be_bound_exits_2_saying_why(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from stratus.serving.dns.cli import main

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        argv = [
            "--name",
            NAME,
            "--gateway",
            "127.0.0.1:1",
            "--listen",
            f"127.0.0.1:{port}",
            "--timeout",
            "0.2",
        ]
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"error: --listen 127.0.0.1:{port}: cannot listen there: Address already in use" in err
