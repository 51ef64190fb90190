"""Steady client load for the drills, counting what a client would see as a failure.

Each thread sends one valid inference request after another on a keep-alive connection. With several
gateways (front doors) a thread behaves as a client that re-resolves a name: when its gateway refuses
or drops the connection before any answer, it retries that request once on the next gateway, and counts
the retry; anything else (a status other than 200, a timeout, a second connection failure) is a failure.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from typing import Any

import orjson

from stratus.errors import ServingError

__all__ = ["LoadCounts", "LoadGenerator", "sample_request"]

_SAMPLES_KEPT = 5
# Raised when a gateway is gone before it answered: the request never ran, so trying another is safe.
_CONNECTION_LOST = (
    ConnectionRefusedError,
    ConnectionResetError,
    BrokenPipeError,
    http.client.RemoteDisconnected,
)


def sample_request(gateway_url: str, model: str) -> bytes:
    """A valid inference body for ``model`` (zeros of each input's shape, one row), from its metadata."""
    conn = http.client.HTTPConnection(gateway_url.removeprefix("http://"), timeout=5)
    try:
        conn.request("GET", f"/v2/models/{model}")
        response = conn.getresponse()
        meta = orjson.loads(response.read())
    finally:
        conn.close()
    if response.status != 200:
        raise ServingError(f"the gateway cannot describe model {model!r}: {meta}", status=response.status)
    inputs = []
    for spec in meta["inputs"]:
        shape = [1 if d < 0 else d for d in spec["shape"]]
        count = 1
        for d in shape:
            count *= d
        value: Any = "" if spec["datatype"] == "BYTES" else (False if spec["datatype"] == "BOOL" else 0)
        inputs.append(
            {"name": spec["name"], "shape": shape, "datatype": spec["datatype"], "data": [value] * count}
        )
    return orjson.dumps({"inputs": inputs})


@dataclass(frozen=True)
class LoadCounts:
    """Requests sent, client-visible failures, and requests retried on another gateway, so far."""

    requests: int
    failures: int
    retried: int


class LoadGenerator:
    """Closed-loop load from ``concurrency`` threads over ``urls`` (the gateways); counts failures.

    A failure is anything a client would see as one: a status other than 200, a timeout, or a lost
    connection that the retry on the next gateway did not save.
    """

    def __init__(
        self, urls: list[str], path: str, body: bytes, concurrency: int = 4, timeout_s: float = 10.0
    ) -> None:
        if not urls:
            raise ServingError("no gateway to send load to", status=500)
        self.urls = [url.removeprefix("http://") for url in urls]
        self.path = path
        self.body = body
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.samples: list[str] = []
        self._requests = self._failures = self._retried = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def counts(self) -> LoadCounts:
        """The counts now (to split a drill's failures into phases)."""
        with self._lock:
            return LoadCounts(self._requests, self._failures, self._retried)

    def __enter__(self) -> LoadGenerator:
        for i in range(self.concurrency):
            thread = threading.Thread(target=self._loop, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _loop(self, first: int) -> None:
        index = first % len(self.urls)  # spread the threads over the gateways, as DNS answers would
        conn = http.client.HTTPConnection(self.urls[index], timeout=self.timeout_s)
        while not self._stop.is_set():
            problem, retried = None, False
            for attempt in range(2 if len(self.urls) > 1 else 1):
                try:
                    problem = self._send(conn)
                    break
                except _CONNECTION_LOST as exc:
                    problem = f"{type(exc).__name__}: {exc} ({self.urls[index]})"
                    retried = attempt == 0 and len(self.urls) > 1
                except (OSError, http.client.HTTPException) as exc:
                    problem = f"{type(exc).__name__}: {exc} ({self.urls[index]})"
                    conn.close()
                    conn = http.client.HTTPConnection(self.urls[index], timeout=self.timeout_s)
                    break
                conn.close()  # this gateway is gone: the next one, as a client re-resolving would
                index = (index + 1) % len(self.urls)
                conn = http.client.HTTPConnection(self.urls[index], timeout=self.timeout_s)
            self._count(problem, retried)
        conn.close()

    def _send(self, conn: http.client.HTTPConnection) -> str | None:
        conn.request("POST", self.path, body=self.body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        return None if response.status == 200 else f"{response.status}: {payload[:160]!r}"

    def _count(self, problem: str | None, retried: bool) -> None:
        with self._lock:
            self._requests += 1
            self._retried += retried
            if problem is not None:
                self._failures += 1
                if len(self.samples) < _SAMPLES_KEPT:
                    self.samples.append(problem)
