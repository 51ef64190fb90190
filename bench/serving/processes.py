"""Start, pin, probe and stop the processes a case needs; each is stopped by its own PID.

Every server, proxy and load generator is a child of the bench, started in its own session so that a
stop reaches only what the bench started. ``pin`` prefixes ``taskset -c CPU``: on two cores the load
generator and the server must not fight for one core (the field notes), so servers and proxies get
CPU 0 and wrk CPU 1. Readiness is a real inference answered correctly, not an open port: a proxy whose
upstream is not yet healthy accepts connections long before it can answer.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.serving.model import MODEL_NAME, check_answer, request_body

__all__ = ["Proc", "StartError", "free_port", "infer_once", "pin", "start", "stop", "wait_ready"]

SERVER_CPU = 0
LOAD_CPU = 1


class StartError(RuntimeError):
    """A process exited or never became ready; the message carries the tail of its log."""


@dataclass
class Proc:
    """A started child: its argv (for a restart on the same port), log file and ready-probe port."""

    name: str
    argv: list[str]
    log: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def tail(self, chars: int = 2000) -> str:
        """The end of the log, for error messages."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def pin(cpu: int, argv: Sequence[str]) -> list[str]:
    """``taskset -c cpu argv`` when the machine has that CPU and taskset exists, else argv unchanged."""
    if cpu in os.sched_getaffinity(0) and len(os.sched_getaffinity(0)) > 1 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *argv]
    return list(argv)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(proc: Proc) -> Proc:
    """Launch ``proc`` (again, when it was stopped: same argv, same port); the log is appended to."""
    with proc.log.open("ab") as log:
        proc.popen = subprocess.Popen(
            proc.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **proc.env},
            start_new_session=True,
        )
    return proc


def infer_once(port: int, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """One V2 inference on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request(
            "POST",
            f"/v2/models/{MODEL_NAME}/infer",
            body=request_body(),
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(proc: Proc, timeout_s: float = 60.0) -> float:
    """Block until an inference through ``proc.port`` answers correctly; returns the seconds it took."""
    started = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - started < timeout_s:
        if proc.popen is not None and proc.popen.poll() is not None:
            raise StartError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            status, body = infer_once(proc.port, timeout_s=2.0)
            if status == 200:
                check_answer(body)
                return time.monotonic() - started
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise StartError(f"{proc.name} not ready in {timeout_s:.0f} s (last: {last}):\n{proc.tail()}")


def stop(proc: Proc, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int | None:
    """Signal ``proc``'s process group (its own session), wait, then SIGKILL it; returns the exit code."""
    popen = proc.popen
    if popen is None:
        return None
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, sig)
        try:
            popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout_s)
    return popen.returncode
