"""The disaster-recovery drill: kill one site's model server under load and watch the fleet heal.

What users need to know before a region really goes down: do clients see errors (they must not), how
long the gateway takes to stop sending to the dead site, and how long after the site is back it is used
again. The drill drives steady load through the gateway from a few threads, signals the site's server
(SIGKILL: a crash; SIGTERM: a drain), lets the supervisor restart it, and times each phase from the
gateway's admin API and the server's own readiness.
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from stratus.errors import ServingError
from stratus.processes import is_running
from stratus.serving.deployment import SUPERVISOR_MARKER, Deployment, load_deployment
from stratus.serving.fleet import http_ready
from stratus.serving.gateway_client import site_states

__all__ = ["DrillResult", "LoadGenerator", "kill_site", "sample_request"]

_SAMPLES_KEPT = 5


@dataclass
class DrillResult:
    """What the drill saw; times in seconds, None when the phase did not happen within the timeout."""

    site: str
    signal: str
    requests: int = 0
    failures: int = 0
    failure_samples: list[str] = field(default_factory=list)
    ejected_after_s: float | None = None
    restarted_after_s: float | None = None
    back_in_rotation_after_s: float | None = None

    @property
    def passed(self) -> bool:
        """No client-visible failure, and the site was ejected, restarted and taken back."""
        return (
            self.failures == 0
            and self.ejected_after_s is not None
            and self.restarted_after_s is not None
            and self.back_in_rotation_after_s is not None
        )

    def to_json(self) -> dict[str, Any]:
        """The result for `--json`."""
        return {**asdict(self), "passed": self.passed}


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


class LoadGenerator:
    """Closed-loop load from ``concurrency`` threads, one keep-alive connection each; counts failures.

    A failure is anything a client would see as one: a status other than 200, a reset, a timeout.
    """

    def __init__(
        self, url: str, path: str, body: bytes, concurrency: int = 4, timeout_s: float = 10.0
    ) -> None:
        self.url = url.removeprefix("http://")
        self.path = path
        self.body = body
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.requests = 0
        self.failures = 0
        self.samples: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> LoadGenerator:
        for _ in range(self.concurrency):
            thread = threading.Thread(target=self._loop, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _loop(self) -> None:
        conn = http.client.HTTPConnection(self.url, timeout=self.timeout_s)
        headers = {"Content-Type": "application/json"}
        while not self._stop.is_set():
            problem: str | None = None
            try:
                conn.request("POST", self.path, body=self.body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                if response.status != 200:
                    problem = f"{response.status}: {payload[:160]!r}"
            except (OSError, http.client.HTTPException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection(self.url, timeout=self.timeout_s)
            with self._lock:
                self.requests += 1
                if problem is not None:
                    self.failures += 1
                    if len(self.samples) < _SAMPLES_KEPT:
                        self.samples.append(problem)
        conn.close()


def _wait_for(condition: Callable[[], bool], deadline: float, poll_s: float = 0.02) -> float | None:
    """Poll ``condition()`` until true; the monotonic time it first held, or None past ``deadline``."""
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(poll_s)
    return None


def _state(deployment: Deployment, site: str) -> str:
    try:
        return str(site_states(deployment.gateway_url, deployment.admin_token, 1.0)[site]["state"])
    except ServingError:
        return "unknown"


def kill_site(
    folder: Path,
    site: str,
    *,
    sig: signal.Signals = signal.SIGKILL,
    concurrency: int = 4,
    warmup_s: float = 1.0,
    settle_s: float = 1.0,
    timeout_s: float = 60.0,
) -> DrillResult:
    """Run the drill against the deployment recorded in ``folder``; raises if there is none to drill."""
    deployment = load_deployment(folder)
    if deployment is None or not deployment.ready:
        raise ServingError("no deployment is running here: start one with `stratus serve`", status=400)
    if site not in deployment.sites:
        known = ", ".join(deployment.sites)
        raise ServingError(
            f"site {site!r} serves nothing in this deployment; it serves from {known}", status=400
        )
    if not is_running(deployment.supervisor_pid, SUPERVISOR_MARKER):
        raise ServingError(
            "the deployment's supervisor is not running, so nothing would restart the site: "
            "start the deployment again with `stratus serve`",
            status=400,
        )
    result = DrillResult(site=site, signal=sig.name)
    body = sample_request(deployment.gateway_url, deployment.model)
    before = deployment.sites[site]
    with LoadGenerator(
        deployment.gateway_url, f"/v2/models/{deployment.model}/infer", body, concurrency
    ) as load:
        time.sleep(warmup_s)
        killed_at = time.monotonic()
        deadline = killed_at + timeout_s
        os.kill(before.pid, sig)
        ejected = _wait_for(lambda: _state(deployment, site) != "healthy", deadline)
        if ejected is not None:
            result.ejected_after_s = round(ejected - killed_at, 3)

        def restarted() -> bool:
            current = load_deployment(folder)
            return (
                current is not None
                and current.sites[site].pid != before.pid
                and http_ready(current.sites[site].url, timeout_s=0.5)
            )

        ready = _wait_for(restarted, deadline)
        if ready is not None:
            result.restarted_after_s = round(ready - killed_at, 3)
            back = _wait_for(lambda: _state(deployment, site) == "healthy", deadline)
            if back is not None:
                result.back_in_rotation_after_s = round(back - ready, 3)
        time.sleep(settle_s)
    result.requests, result.failures, result.failure_samples = load.requests, load.failures, load.samples
    return result
