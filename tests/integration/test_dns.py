"""The health-checked DNS responder as a process, asked by dnspython's resolver, in front of stand-in
gateways on 127.0.0.1 and 127.0.0.2 (one port): a killed gateway leaves the answers within a bounded
number of polls and comes back when it does; the re-resolving client rides through with no failure.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from stratus.serving.dns.client import ResolveError, ResolvingClient
from tests.integration.dns_harness import (
    Backend,
    Responder,
    addresses,
    resolver,
    shared_port,
    start_backend,
    start_responder,
)
from tests.integration.gateway_harness import wait_for

pytestmark = pytest.mark.slow

NAME = "fraud.stratus.local"
HOSTS = ["127.0.0.1", "127.0.0.2"]
# Checks every 0.25 s, out after 2 failures: ~0.5 s. A poll every 0.1 s for 100 polls is 20x that.
POLLS = 100


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[dict[str, Backend], Responder, int]]:
    port = shared_port(HOSTS)
    backends = {
        f"gw-{i}": start_backend(host, port, f"gw-{i}", tmp_path / f"gw-{i}.log")
        for i, host in enumerate(HOSTS, 1)
    }
    responder = start_responder(NAME, [f"127.0.0.{i}:{port}" for i in (1, 2)], tmp_path / "dns.log")
    try:
        yield backends, responder, port
    finally:
        code = responder.stop()
        for backend in backends.values():
            backend.kill()
        assert code == 0, (tmp_path / "dns.log").read_text()[-2000:]
        assert responder.proc.poll() is not None


def poll_until(what: str, port: int, wanted: set[str]) -> int:
    """Ask every 0.1 s until the A records are ``wanted``; returns the polls it took (fails past POLLS)."""
    seen: list[set[str]] = []
    for poll in range(1, POLLS + 1):
        seen.append(addresses(port, NAME))
        if seen[-1] == wanted:
            return poll
        threading.Event().wait(0.1)
    pytest.fail(f"{what}: after {POLLS} polls the answer is still {seen[-1]}, wanted {wanted}", pytrace=False)


def test_the_name_follows_gateway_health(
    fleet: tuple[dict[str, Backend], Responder, int], tmp_path: Path
) -> None:
    backends, responder, port = fleet
    answer = resolver(responder.port).resolve(NAME, "A")
    assert {r.to_text() for r in answer} == {"127.0.0.1", "127.0.0.2"}
    assert answer.rrset is not None
    assert answer.rrset.ttl == 2  # the documented default
    serial = next(iter(resolver(responder.port).resolve(NAME, "SOA"))).serial

    backends["gw-2"].kill()
    poll_until("the killed gateway leaves the answer", responder.port, {"127.0.0.1"})
    assert next(iter(resolver(responder.port).resolve(NAME, "SOA"))).serial > serial

    backends["gw-2"] = start_backend("127.0.0.2", port, "gw-2", tmp_path / "gw-2.log")
    poll_until("the restarted gateway comes back", responder.port, {"127.0.0.1", "127.0.0.2"})
    log = responder.log.read_text()
    assert "site gw-2 is unhealthy: refused" in log
    assert "answering fraud.stratus.local. with gw-1\n" in log


def test_every_gateway_down_fails_open(fleet: tuple[dict[str, Backend], Responder, int]) -> None:
    backends, responder, _ = fleet
    for backend in backends.values():
        backend.kill()

    def none_healthy() -> bool:
        answer = addresses(responder.port, NAME)  # the responder reports a change when it answers
        return "with every gateway (none healthy)" in responder.log.read_text() and bool(answer)

    wait_for("the responder to see no healthy gateway", none_healthy, timeout=30)
    assert addresses(responder.port, NAME) == {"127.0.0.1", "127.0.0.2"}


def test_other_names_nxdomain_outside_names_refused_and_tcp_answers(
    fleet: tuple[dict[str, Backend], Responder, int],
) -> None:
    _, responder, port = fleet
    res = resolver(responder.port)
    with pytest.raises(dns.resolver.NXDOMAIN):
        res.resolve(f"nope.{NAME}", "A")
    refused = dns.query.udp(
        dns.message.make_query("example.com", "A"), "127.0.0.1", port=responder.port, timeout=3
    )
    assert refused.rcode() == dns.rcode.REFUSED
    over_tcp = dns.query.tcp(dns.message.make_query(NAME, "A"), "127.0.0.1", port=responder.port, timeout=3)
    assert {r.to_text() for rrset in over_tcp.answer for r in rrset} == {"127.0.0.1", "127.0.0.2"}
    srv = res.resolve(f"_http._tcp.{NAME}", "SRV")
    assert {(r.port, r.target.to_text()) for r in srv} == {(port, f"gw-1.{NAME}."), (port, f"gw-2.{NAME}.")}
    with ResolvingClient(NAME, dns_port=responder.port) as by_srv:  # no port given: from the SRV records
        assert sorted(by_srv.resolve()) == [("127.0.0.1", port), ("127.0.0.2", port)]
        assert by_srv.request("GET", "/v2/health/ready").status == 200
    with pytest.raises(
        ResolveError, match=r"cannot resolve nope\.fraud\.stratus\.local\.: The DNS query name"
    ):
        ResolvingClient(f"nope.{NAME}", dns_port=responder.port, port=port).resolve()


def test_the_resolving_client_rides_through_a_gateway_kill(
    fleet: tuple[dict[str, Backend], Responder, int], tmp_path: Path
) -> None:
    backends, responder, port = fleet
    served: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()
    clients: list[ResolvingClient] = []

    def worker() -> None:
        with ResolvingClient(NAME, dns_port=responder.port, port=port, timeout_s=10) as client:
            clients.append(client)
            while not stop.is_set():
                try:
                    response = client.request("POST", "/v2/models/m/infer", b"{}")
                    outcome = response.body.decode() if response.status == 200 else f"HTTP {response.status}"
                except Exception as exc:  # every client-visible failure counts
                    outcome = f"{type(exc).__name__}: {exc}"
                    with lock:
                        failures.append(outcome)
                with lock:
                    served[outcome] += 1

    def total(name: str) -> int:
        with lock:
            return served[name]

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_for("both gateways to serve", lambda: total("gw-1") > 20 and total("gw-2") > 20)
        backends["gw-2"].kill()
        before = total("gw-1")
        wait_for("gw-1 to carry the load alone", lambda: total("gw-1") > before + 200)
        backends["gw-2"] = start_backend("127.0.0.2", port, "gw-2", tmp_path / "gw-2.log")
        back = total("gw-2")
        wait_for("gw-2 to serve again once it is back", lambda: total("gw-2") > back + 20)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert failures == []
    retries = sum(client.stats.retries for client in clients)
    resolutions = sum(client.stats.resolutions for client in clients)
    print(f"served {dict(served)}; retries {retries}; resolutions {resolutions}")
    assert retries >= 1  # the kill was seen: a request failed on gw-2 and was retried on gw-1
