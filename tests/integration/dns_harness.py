"""Harness for the DNS tests: stand-in gateways on 127.0.0.1, 127.0.0.2, ... sharing one port, the real
responder as a subprocess (``python -m stratus.serving.dns``), and dnspython's resolver pointed at it.
Every process is stopped by PID and checked gone.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.resolver
import pytest

from tests.integration.gateway_harness import wait_for
from tests.integration.serving_harness import ROOT

__all__ = ["Backend", "Responder", "addresses", "resolver", "shared_port", "start_backend", "start_responder"]

BACKEND = ROOT / "tests" / "integration" / "dns_backend.py"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def shared_port(hosts: list[str], kind: int = socket.SOCK_STREAM) -> int:
    """A port free on every one of ``hosts`` (skips the test where 127.0.0.2 cannot be bound)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as first:
            first.bind((hosts[0], 0))
            port = int(first.getsockname()[1])
            try:
                for host in hosts[1:]:
                    with socket.socket(socket.AF_INET, kind) as other:
                        other.bind((host, port))
            except OSError as exc:
                if exc.errno == 99:  # EADDRNOTAVAIL: this system does not route 127/8 to lo
                    pytest.skip(f"cannot bind {hosts[1:]}: {exc} (Linux routes all of 127/8 to lo)")
                continue
            return port
    pytest.fail("no port free on every loopback address after 50 tries", pytrace=False)


@dataclass
class Backend:
    """A stand-in gateway process."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    name: str

    def ready(self) -> bool:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
        try:
            conn.request("GET", "/v2/health/ready")
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to open connections."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def start_backend(host: str, port: int, name: str, log: Path) -> Backend:
    """Start a stand-in gateway on ``host:port``; returns once it answers."""
    proc = subprocess.Popen(
        [sys.executable, str(BACKEND), host, str(port), name], stdout=log.open("ab"), stderr=subprocess.STDOUT
    )
    backend = Backend(proc, host, port, name)

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(
                f"backend {name} exited with {proc.returncode}: {log.read_text()[-2000:]}", pytrace=False
            )
        return backend.ready()

    wait_for(f"backend {name} on {host}:{port}", up, timeout=30)
    return backend


@dataclass
class Responder:
    """The DNS responder process."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> int:
        """SIGTERM and its exit code (a clean stop is 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)


def resolver(port: int) -> dns.resolver.Resolver:
    """dnspython's stub resolver asking only the responder at 127.0.0.1:``port``, with no cache."""
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = ["127.0.0.1"]
    res.port = port
    res.lifetime = 3.0
    return res


def addresses(port: int, name: str) -> set[str]:
    """The A records the responder gives for ``name`` now."""
    return {r.to_text() for r in resolver(port).resolve(name, "A")}


def _udp_and_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (the responder binds both)."""
    for _ in range(50):
        port = shared_port(["127.0.0.1"], socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


def start_responder(name: str, gateways: list[str], log: Path, *extra: str) -> Responder:
    """Start ``python -m stratus.serving.dns`` on a free UDP+TCP port; returns once it answers.

    Between choosing a free port and the responder binding it another process on this machine may take it
    (the responder then exits 2 saying so): that start is retried on a new port, a few times.
    """
    for _ in range(5):
        port = _udp_and_tcp_port()
        args = [sys.executable, "-m", "stratus.serving.dns", "--name", name, "--listen", f"127.0.0.1:{port}"]
        for gateway in gateways:
            args += ["--gateway", gateway]
        proc = subprocess.Popen([*args, *extra], stdout=log.open("ab"), stderr=subprocess.STDOUT, env=_env())
        responder = Responder(proc, port, log)
        lost_port = False

        def answers(proc: subprocess.Popen[bytes] = proc, port: int = port) -> bool:
            nonlocal lost_port
            if proc.poll() is not None:
                if "address already in use" in log.read_text():
                    lost_port = True
                    return True
                pytest.fail(
                    f"responder exited with {proc.returncode}: {log.read_text()[-2000:]}", pytrace=False
                )
            try:
                return bool(addresses(port, name))
            except dns.exception.DNSException:
                return False

        wait_for("the DNS responder to answer", answers, timeout=60)
        if not lost_port:
            return responder
        log.write_text("")  # the next try's log starts clean
    pytest.fail("the DNS responder lost its port to another process five times in a row", pytrace=False)
