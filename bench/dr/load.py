"""Steady load through the DNS name, from two kinds of client at once, counting what each one sees.

- ``resolving``: :class:`stratus.serving.dns.client.ResolvingClient`, which asks the responder, honours
  the answer's TTL, and on a connection failure re-resolves and retries once on another gateway;
- ``naive`` (the anchor): resolves the name once when it starts, keeps that one address, never
  re-resolves and never retries; what a plain HTTP client with a resolved URL sees. Its threads are
  spread evenly over the answer's addresses, so a killed gateway always strands some of them.

Both run in the same drill against the same kill, one keep-alive connection per thread. A failure is
anything a caller would see as one: an exception, a status other than 200, or a wrong answer (checked
against numpy). After a failure a thread pauses ``pause_s`` before its next request, so that a client
stuck on a refused port does not spin a core; the failure window (first to last failure) is the
figure that does not depend on that pause. Each thread stops after ``max_requests`` or when stopped.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import dns.resolver

from bench.serving.model import MODEL_NAME, check_answer, request_body
from stratus.serving.dns.client import ResolvingClient

__all__ = ["ClientKind", "ClientResult", "Load", "NaiveClient", "resolve_once"]

ClientKind = Literal["resolving", "naive"]
Post = Callable[[str, bytes], tuple[int, bytes]]
_PATH = f"/v2/models/{MODEL_NAME}/infer"
_HEADERS = {"Content-Type": "application/json"}
_SAMPLES = 3


@dataclass
class ClientResult:
    """What one kind of client saw during a drill; times are seconds after the kill."""

    requests: int = 0
    failures: int = 0
    retries: int = 0  # requests the resolving client sent a second time (0 for the naive one)
    first_failure_s: float | None = None
    last_failure_s: float | None = None
    samples: list[str] = field(default_factory=list)

    @property
    def failure_window_s(self) -> float | None:
        """From the first client-visible failure to the last; None without failures."""
        if self.first_failure_s is None or self.last_failure_s is None:
            return None
        return round(self.last_failure_s - self.first_failure_s, 3)

    def to_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {**asdict(self), "failure_window_s": self.failure_window_s}


def resolve_once(name: str, dns_port: int, nameserver: str = "127.0.0.1") -> list[str]:
    """The A records the responder gives ``name`` now, asked directly (no cache), in answer order."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port, resolver.lifetime = [nameserver], dns_port, 2.0
    resolver.cache = None
    return [record.to_text() for record in resolver.resolve(name, "A")]


class NaiveClient:
    """HTTP/1.1 to one address picked once from the name's answer: no re-resolution, no retry."""

    def __init__(self, name: str, dns_port: int, port: int, index: int, timeout_s: float = 10.0) -> None:
        addresses = sorted(resolve_once(name, dns_port))
        self.address = (addresses[index % len(addresses)], port)
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """One request on the kept-alive connection (a new one after any error): (status, body)."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection(*self.address, timeout=self.timeout_s)
        try:
            self._conn.request("POST", path, body=body, headers=_HEADERS)
            response = self._conn.getresponse()
            return response.status, response.read()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Drop the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Load:
    """``threads`` resolving and ``threads`` naive client threads against ``name`` until stopped."""

    def __init__(
        self,
        name: str,
        dns_port: int,
        port: int,
        *,
        threads: int = 4,
        max_requests: int = 20_000,
        pause_s: float = 0.05,
    ) -> None:
        self.name, self.dns_port, self.port = name, dns_port, port
        self.max_requests = max_requests
        self.pause_s = pause_s
        self.results: dict[ClientKind, ClientResult] = {"resolving": ClientResult(), "naive": ClientResult()}
        self.origin = time.monotonic()  # failure times are reported relative to this (the kill)
        self._body = request_body()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(kind, i), daemon=True)
            for i in range(threads)
            for kind in ("resolving", "naive")
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every thread and wait for it (each finishes its request in flight)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, kind: ClientKind, index: int) -> None:
        if kind == "resolving":
            client = ResolvingClient(self.name, dns_port=self.dns_port, port=self.port, timeout_s=10.0)
            post: Post = self._resolving_post(client)
        else:
            naive = NaiveClient(self.name, self.dns_port, self.port, index)
            post = naive.post
        sent = 0
        while not self._stop.is_set() and sent < self.max_requests:
            sent += 1
            problem = _one(post, self._body)
            self._record(kind, problem)
            if problem is not None:
                time.sleep(self.pause_s)
        if kind == "resolving":
            client.close()
            with self._lock:
                self.results["resolving"].retries += client.stats.retries
        else:
            naive.close()

    @staticmethod
    def _resolving_post(client: ResolvingClient) -> Post:
        def post(path: str, body: bytes) -> tuple[int, bytes]:
            response = client.request("POST", path, body=body, headers=_HEADERS)
            return response.status, response.body

        return post

    def _record(self, kind: ClientKind, problem: str | None) -> None:
        at = round(time.monotonic() - self.origin, 3)
        with self._lock:
            result = self.results[kind]
            result.requests += 1
            if problem is None:
                return
            result.failures += 1
            result.first_failure_s = at if result.first_failure_s is None else result.first_failure_s
            result.last_failure_s = at
            if len(result.samples) < _SAMPLES:
                result.samples.append(f"{at:+.2f} s {problem}")


def _one(post: Post, body: bytes) -> str | None:
    """None when the request was answered right, else what went wrong, in a few words."""
    try:
        status, payload = post(_PATH, body)
    except Exception as exc:  # refused, reset, timeout, ResolveError: all of them a failure to the caller
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    if status != 200:
        return f"HTTP {status}: {payload[:120]!r}"
    try:
        check_answer(payload)
    except ValueError as exc:
        return f"wrong answer: {exc}"
    return None
