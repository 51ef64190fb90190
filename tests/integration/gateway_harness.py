"""Harness for the gateway tests: the real gateway as a subprocess, model servers on fixed ports (so one
can be restarted where it was), a steady load generator, a failing upstream, and metric readers.

Model servers and models come from :mod:`tests.integration.serving_harness`.
"""

from __future__ import annotations

import http.client
import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.serving_harness import ROOT, Server

__all__ = [
    "FakeUpstream",
    "Fleet",
    "Gateway",
    "Load",
    "free_port",
    "metric_sum",
    "served",
    "start_gateway",
    "start_server_on",
    "wait_for",
]

TOKEN = "test-admin-token-123"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def _request(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        raw = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
        conn.request(method, path, body=raw, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        response_headers = {k.lower(): v for k, v in response.getheaders()}
        if response.getheader("content-type") == "application/json":
            return response.status, orjson.loads(data), response_headers
        return response.status, data.decode(), response_headers
    finally:
        conn.close()


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``predicate`` until it holds; fail the test naming ``what`` after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}", pytrace=False)


def start_server_on(models: dict[str, Path], log: Path, port: int, *extra: str) -> Server:
    """Start a model server on ``port`` (so a killed one can come back at the same URL); waits for ready."""
    args = [sys.executable, "-m", "stratus.serving.server", "--port", str(port), *extra]
    for name, path in models.items():
        args += ["--model", f"{name}={path}"]
    proc = subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=_env())
    server = Server(proc, port, log)

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}", pytrace=False)
        return server.call("GET", "/v2/health/ready")[0] == 200

    wait_for(f"model server on port {port} to be ready", ready, timeout=60)
    return server


@dataclass
class Gateway:
    """A running gateway process; ``call`` for the V2 side, ``admin`` with the bearer token."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    token: str = TOKEN

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        status, doc, _ = _request(self.port, method, path, body, headers)
        return status, doc

    def call_with_headers(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        """Like ``call``, also returning the response headers (lowercased names)."""
        return _request(self.port, method, path, body)

    def admin(self, method: str, path: str) -> Any:
        """An admin call that must succeed; returns its JSON."""
        status, doc, _ = _request(self.port, method, path, None, {"Authorization": f"Bearer {self.token}"})
        assert status == 200, (status, doc)
        return doc

    def sites(self) -> dict[str, dict[str, Any]]:
        """``GET /admin/sites`` by site name."""
        return {site["name"]: site for site in self.admin("GET", "/admin/sites")["sites"]}

    def state(self, site: str) -> str:
        """The admin state of one site."""
        return str(self.sites()[site]["state"])

    def metrics(self) -> str:
        """The gateway's Prometheus text."""
        status, text, _ = _request(self.port, "GET", "/metrics")
        assert status == 200
        return str(text)

    def stop(self) -> int:
        """SIGTERM, and the exit code (the gateway must stop cleanly: 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)


def start_gateway(
    config: dict[str, Any], folder: Path, name: str = "gateway", *, token_in_env: bool = False
) -> Gateway:
    """Write ``config`` (JSON, the admin token and a free port added) and start the gateway on it.

    The token goes in the file, or with ``token_in_env`` in STRATUS_GATEWAY_TOKEN; the port is passed
    with ``--port`` (the file says 1, so the override is what makes it work). Returns once the gateway
    answers ``/v2/health/live``; readiness depends on the sites, so the caller waits for what it needs.
    """
    port = free_port()
    path = folder / f"{name}.json"
    token = {} if token_in_env else {"admin_token": TOKEN}
    path.write_bytes(orjson.dumps({**token, **config, "port": 1}))
    log = folder / f"{name}.log"
    args = [sys.executable, "-m", "stratus.serving.gateway", "--config", str(path), "--port", str(port)]
    env = {**_env(), "STRATUS_GATEWAY_TOKEN": TOKEN} if token_in_env else _env()
    proc = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    gateway = Gateway(proc, port, log)

    def live() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"gateway exited with {proc.returncode}: {log.read_text()[-2000:]}", pytrace=False)
        return gateway.call("GET", "/v2/health/live")[0] == 200

    wait_for("the gateway to answer /v2/health/live", live, timeout=60)
    return gateway


_SERVED = re.compile(r'^stratus_serving_requests_total\{code="(\d+)",route="([^"]+)"\} ([0-9.e+]+)$', re.M)


def served(server: Server, route: str | None = "/v2/models/{m}/infer", code: str | None = None) -> int:
    """How many requests on ``route`` (any with None) with ``code`` (any with None) a server answered.

    The server files a request it refused with a 4xx under route "unknown": count those with None.
    """
    status, text = server.call("GET", "/metrics")
    assert status == 200
    return sum(
        int(float(n))
        for c, r, n in _SERVED.findall(str(text))
        if (route is None or r == route) and (code is None or c == code)
    )


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (Prometheus text format)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', head))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


@dataclass
class Load:
    """Steady concurrent inference through the gateway: ``workers`` threads, one keep-alive connection each.

    Every outcome is recorded: HTTP status codes, and client-side errors (by exception type) — the
    failover tests require zero of anything but 200.
    """

    port: int
    path: str
    body: bytes
    workers: int = 4
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        """Start the workers; returns self."""
        for _ in range(self.workers):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                conn.request("POST", self.path, body=self.body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
                outcome = str(response.status)
                if response.status != 200:
                    with self._lock:
                        self.failures.append(f"{response.status}: {data[:300]!r}")
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
                with self._lock:
                    self.failures.append(f"{outcome}: {exc}")
                conn.close()
                conn = None
            with self._lock:
                self.outcomes[outcome] += 1
        if conn is not None:
            conn.close()

    @property
    def total(self) -> int:
        """Requests completed so far (any outcome)."""
        with self._lock:
            return sum(self.outcomes.values())

    def stop(self) -> Counter[str]:
        """Stop the workers and return the outcomes."""
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        return self.outcomes


class FakeUpstream:
    """A stand-in site that passes health checks and answers every other request with ``status`` after
    ``delay_s`` (a fixed V2 response body for a 200, an error body otherwise).

    With a 503 it is the sick-fleet case retries could make worse (readiness says yes, inference says
    no); with a 200 and a delay it is a slow site for the latency policy.
    """

    OK_BODY = (
        b'{"model_name":"logit","model_version":"1","outputs":[{"name":"prob","datatype":"FP32",'
        b'"shape":[1,1],"data":[0.5]}]}'
    )

    def __init__(self, status: int = 503, delay_s: float = 0.0) -> None:
        self.status = status
        self.delay_s = delay_s
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                ready = self.path == "/v2/health/ready"
                with outer._lock:
                    outer.hits[self.path] += 1
                if ready:
                    status, body = 200, b'{"ready": true}'
                else:
                    time.sleep(outer.delay_s)
                    status = outer.status
                    body = outer.OK_BODY if status == 200 else b'{"error": "failing on purpose"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = _answer  # noqa: N815 (http.server's naming)
            do_POST = _answer  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Where the gateway should find it."""
        return f"http://127.0.0.1:{self.port}"

    def inference_hits(self) -> int:
        """Requests received other than health checks."""
        with self._lock:
            return sum(n for path, n in self.hits.items() if path != "/v2/health/ready")

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


class Fleet:
    """Model servers by site name, each on a fixed port so that a killed one can come back at its URL."""

    def __init__(self, models: dict[str, Path], folder: Path, names: list[str], *extra: str) -> None:
        self.models = models
        self.folder = folder
        self.extra = extra
        self.ports = {name: free_port() for name in names}
        self.servers: dict[str, Server] = {}
        for name in names:
            self.start(name)

    def start(self, name: str) -> Server:
        """(Re)start the server of site ``name`` on its port; returns once it is ready."""
        log = self.folder / f"{name}.log"
        self.servers[name] = start_server_on(self.models, log, self.ports[name], *self.extra)
        return self.servers[name]

    def ensure_up(self) -> None:
        """Restart any server that a test stopped."""
        for name, server in self.servers.items():
            if server.proc.poll() is not None:
                self.start(name)

    def url(self, name: str) -> str:
        """The site's URL for a gateway config."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def served(self, route: str | None = "/v2/models/{m}/infer", code: str | None = None) -> dict[str, int]:
        """Requests answered on ``route`` by each running server."""
        return {
            name: served(server, route, code)
            for name, server in self.servers.items()
            if server.proc.poll() is None
        }

    def stop_all(self) -> None:
        """Kill every server."""
        for server in self.servers.values():
            if server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait(10)
