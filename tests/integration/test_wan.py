"""The delayed WAN for real: namespaces, TAP devices and the forwarder, probed with TCP from inside.

Every test builds its own network and talks over it with small Python programs started in the
namespaces; nothing is mocked. Timing is asserted only as a lower bound (a round trip cannot beat twice
the one-way delay), which is a property of the link, not of how fast this machine is.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from stratus.errors import StratusError
from stratus.sandbox.wan import INTERFACE, DelayedNetwork, Host, enter, wan_unavailable_reason

_UNAVAILABLE = wan_unavailable_reason()
pytestmark = [
    pytest.mark.slow,  # each test creates namespaces and starts a forwarder and a few Python processes
    pytest.mark.skipif(_UNAVAILABLE is not None, reason=f"no delayed WAN here: {_UNAVAILABLE}"),
]

#: Echoes every connection's bytes back; prints its port once it listens.
ECHO_SERVER = """
import socket
server = socket.create_server(("0.0.0.0", 0))
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while data := conn.recv(1 << 20):
            conn.sendall(data)
"""

#: Connects to ADDRESS PORT, times ROUNDS small round trips, then echoes BULK random bytes through.
ECHO_CLIENT = """
import hashlib, json, os, socket, sys, threading, time
address, port, rounds, bulk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with socket.create_connection((address, port), timeout=20) as conn:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rtts, replies = [], []
    for i in range(rounds):
        message = f"ping {i}".encode()
        start = time.perf_counter()
        conn.sendall(message)
        reply = b""
        while len(reply) < len(message):
            reply += conn.recv(1024)
        rtts.append((time.perf_counter() - start) * 1000)
        replies.append(reply.decode())
    payload = os.urandom(bulk)
    sender = threading.Thread(target=conn.sendall, args=(payload,))
    sender.start()
    echoed = bytearray()
    while len(echoed) < bulk:
        echoed += conn.recv(1 << 20)
    sender.join()
print(json.dumps({"rtt_ms": rtts, "replies": replies, "bulk_intact": bytes(echoed) == payload}))
"""

#: Tries to connect to each HOST:PORT argument; prints what happened to each.
PROBE = """
import errno, json, socket, sys
results = {}
for target in sys.argv[1:]:
    address, port = target.rsplit(":", 1)
    try:
        socket.create_connection((address, int(port)), timeout=2).close()
        results[target] = "connected"
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        results[target] = "timeout" if isinstance(exc, TimeoutError) else code
print(json.dumps(results))
"""


def start_echo_server(net: DelayedNetwork, host: Host) -> int:
    """An echo server inside ``host``; returns its port (the network stops it on exit)."""
    server = net.popen(host, [sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    return int(server.stdout.readline())


def echo(
    net: DelayedNetwork, client: Host, server: Host, port: int, rounds: int, bulk: int
) -> dict[str, Any]:
    """Run the echo client inside ``client`` against ``server``; its JSON report."""
    command = [sys.executable, "-c", ECHO_CLIENT, server.address, str(port), str(rounds), str(bulk)]
    done = net.run(client, command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def probe(net: DelayedNetwork, host: Host, targets: list[str]) -> dict[str, str]:
    """From inside ``host``, what happens when connecting to each ``address:port``."""
    done = net.run(host, [sys.executable, "-c", PROBE, *targets], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    results: dict[str, str] = json.loads(done.stdout)
    return results


def namespaces() -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (the forwarder names the namespaces it serves)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def root_interface_aliases() -> set[str]:
    aliases = set()
    for device in Path("/sys/class/net").iterdir():
        with_alias = device / "ifalias"
        if with_alias.exists():
            aliases.add(with_alias.read_text().strip())
    return aliases


def test_round_trip_takes_at_least_twice_the_one_way_delay() -> None:
    with DelayedNetwork(hosts=2, one_way_delay_ms=10.0) as net:
        server, client = net.hosts
        assert [h.address for h in net.hosts] == ["10.77.0.1", "10.77.0.2"]
        port = start_echo_server(net, server)
        report = echo(net, client, server, port, rounds=5, bulk=1 << 20)
    assert report["replies"] == [f"ping {i}" for i in range(5)]
    assert report["bulk_intact"]
    assert min(report["rtt_ms"]) >= 2 * 10.0, report["rtt_ms"]


def test_zero_delay_carries_data_among_three_hosts() -> None:
    with DelayedNetwork(hosts=3, one_way_delay_ms=0) as net:
        first, second, third = net.hosts
        port = start_echo_server(net, first)
        for client in (second, third):
            report = echo(net, client, first, port, rounds=3, bulk=8 << 20)
            assert report["replies"] == ["ping 0", "ping 1", "ping 2"]
            assert report["bulk_intact"]
        interfaces = net.run(third, ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True)
    assert f"{INTERFACE}    inet 10.77.0.3/24" in interfaces.stdout


def test_exit_removes_namespaces_taps_forwarder_and_processes() -> None:
    net = DelayedNetwork(hosts=2, one_way_delay_ms=5.0)
    with net:
        names = [h.name for h in net.hosts]
        assert set(names) <= namespaces()
        assert len(set(names)) == 2
        assert all(name.startswith(f"strwan-{os.getpid()}-") for name in names)
        assert processes_mentioning(names[0])  # the forwarder, holding the TAPs
        sleeper = net.popen(net.hosts[0], ["sleep", "600"])
    assert not set(names) & namespaces()
    # The TAPs lived only as long as the forwarder's descriptors, and none came back to the root namespace.
    assert processes_mentioning(names[0]) == []
    assert not set(names) & root_interface_aliases()
    assert sleeper.returncode is not None
    net.close()  # idempotent
    assert not set(names) & namespaces()


def test_hosts_reach_nothing_outside_their_own_network() -> None:
    listener = socket.create_server(("0.0.0.0", 0))  # in the root namespace, on every address
    port = listener.getsockname()[1]
    shown = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True)
    root_addresses = [line.split()[3].split("/")[0] for line in shown.stdout.splitlines()]
    assert "127.0.0.1" in root_addresses
    try:
        with DelayedNetwork(hosts=2, one_way_delay_ms=1.0) as net, DelayedNetwork(hosts=2) as other:
            server, client = net.hosts
            echo_port = start_echo_server(net, server)
            # Same addresses in another network: its 10.77.0.1 has no server, so the connection is refused.
            results = probe(other, other.hosts[1], [f"{server.address}:{echo_port}"])
            assert results == {f"{server.address}:{echo_port}": "ECONNREFUSED"}
            targets = [f"{address}:{port}" for address in root_addresses]
            results = probe(net, client, [f"{server.address}:{echo_port}", *targets])
    finally:
        listener.close()
    assert results.pop(f"{server.address}:{echo_port}") == "connected"  # the probe itself works
    assert "connected" not in results.values(), results


def test_cli_sets_up_until_interrupted() -> None:
    command = [sys.executable, "-m", "stratus.sandbox.wan", "--hosts", "2", "--delay-ms", "5", "--json"]
    cli = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert cli.stdout is not None
        shown = json.loads(cli.stdout.readline())
        names = [h["name"] for h in shown["hosts"]]
        assert [h["address"] for h in shown["hosts"]] == ["10.77.0.1", "10.77.0.2"]
        assert shown["one_way_delay_ms"] == 5.0
        assert set(names) <= namespaces()
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=30) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert not set(names) & namespaces()


def test_bad_arguments_and_foreign_hosts_are_refused_with_reasons() -> None:
    with pytest.raises(StratusError, match="hosts must be between 1 and 250, got 0"):
        DelayedNetwork(hosts=0)
    with pytest.raises(StratusError, match="one_way_delay_ms must be 0 or more, got -1"):
        DelayedNetwork(one_way_delay_ms=-1)
    with pytest.raises(StratusError, match="prefix must be letters, digits"):
        DelayedNetwork(prefix="a b")
    net = DelayedNetwork(hosts=1)
    with pytest.raises(StratusError, match="'nowhere' is not a host of this network"):
        net.run(Host(name="nowhere", address="10.77.0.9"), ["true"])


def test_a_host_can_be_cut_off_slowed_and_healed_while_connections_run() -> None:
    """The chaos drill's partition and delay: per host, at run time, on the same network."""
    with DelayedNetwork(hosts=3, one_way_delay_ms=0) as net:
        server, client, bystander = net.hosts
        port = start_echo_server(net, server)
        bystander_port = start_echo_server(net, bystander)
        net.set_delay(server, 15.0)
        slowed = echo(net, client, server, port, rounds=3, bulk=1 << 16)
        assert min(slowed["rtt_ms"]) >= 2 * 15.0, slowed["rtt_ms"]  # 15 ms each way, from and to it
        net.set_delay(server, 0)
        net.cut(server)
        target, other = f"{server.address}:{port}", f"{bystander.address}:{bystander_port}"
        # A cut host neither answers nor refuses (frames are lost); the rest of the network still works.
        assert probe(net, client, [target, other]) == {target: "timeout", other: "connected"}
        net.heal(server)
        assert probe(net, client, [target]) == {target: "connected"}
        healed = echo(net, client, server, port, rounds=3, bulk=1 << 16)
    assert healed["bulk_intact"]


def test_a_thread_of_this_process_enters_a_host() -> None:
    """What the drill's load threads do: connect from inside a site, with the rest of the process outside."""
    results: dict[str, object] = {}
    with DelayedNetwork(hosts=2, one_way_delay_ms=0) as net:
        server, client = net.hosts
        port = start_echo_server(net, server)

        def inside() -> None:
            enter(client)
            with socket.create_connection((server.address, port), timeout=5) as conn:
                conn.sendall(b"hello")
                results["echo"] = conn.recv(16)

        thread = threading.Thread(target=inside)
        thread.start()
        thread.join()
        # The main thread is still in the root namespace: no route to the hosts there.
        with pytest.raises(OSError, match=r"timed out|unreachable|refused"):
            socket.create_connection((server.address, port), timeout=1).close()
    assert results == {"echo": b"hello"}
