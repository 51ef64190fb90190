"""A step as a child process in its own session; its peak memory is its own, not its neighbours'.

``local`` and ``serverless`` share this machinery and differ only in the limits they hand it. The
worker reports its own peak memory; for a step killed before it could, reaping with ``os.wait4`` (not
``Popen.wait``) still gives that one child's rusage, so concurrent steps never see each other's peak,
as ``getrusage(RUSAGE_CHILDREN)`` would make them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratus.errors import ExecutorError
from stratus.executors.base import FailureKind, Handle, StepRequest, StepResult

__all__ = [
    "LOG_FILE",
    "RESULT_FILE",
    "Limits",
    "ProcessHandle",
    "exit_words",
    "follow_log",
    "read_report",
    "start_worker",
    "worker_payload",
    "write_request",
]

REQUEST_FILE = "request.json"
RESULT_FILE = "result.json"
LOG_FILE = "step.log"
CANCEL_GRACE_S = 2.0
_FOLLOW_POLL_S = 0.05


@dataclass(frozen=True)
class Limits:
    """What the child may use, and how to tell the user which setting imposed it."""

    memory_bytes: int | None = None
    memory_hint: str = ""
    timeout_s: float | None = None
    timeout_hint: str = ""


def worker_payload(request: StepRequest, memory_limit_bytes: int | None = None) -> dict[str, Any]:
    """The request file the worker reads (``python -m stratus.executors.worker REQUEST.json``)."""
    return {
        "run_id": request.run_id,
        "step": request.step,
        "entrypoint": request.entrypoint,
        "inputs": {ref: str(path) for ref, path in request.inputs.items()},
        "outputs": {name: str(path) for name, path in request.outputs.items()},
        "workdir": str(request.workdir),
        "params": dict(request.params),
        "participants": {
            site: {ref: str(path) for ref, path in refs.items()}
            for site, refs in request.participants.items()
        },
        "python_path": [str(p) for p in request.python_path],
        "result_path": str(request.workdir / RESULT_FILE),
        "memory_limit_bytes": memory_limit_bytes,
    }


def write_request(request: StepRequest, site: str, memory_limit_bytes: int | None) -> Path:
    """Write the worker's request file into the step's workdir (and drop a stale result); its path.

    Every executor that runs the worker (``local``, ``serverless``, ``ray``) hands it this one file.
    """
    workdir = request.workdir
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        payload = worker_payload(request, memory_limit_bytes)
        (workdir / REQUEST_FILE).write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
        (workdir / RESULT_FILE).unlink(missing_ok=True)
    except OSError as exc:
        message = f"cannot prepare the working directory {workdir}: {exc}"
        raise ExecutorError(message, step=request.step, site=site) from exc
    return workdir / REQUEST_FILE


def start_worker(
    request: StepRequest, site: str, limits: Limits, extra_env: Mapping[str, str] | None = None
) -> ProcessHandle:
    """Write the request file and start ``python -m stratus.executors.worker`` in the step's workdir."""
    request_file = write_request(request, site, limits.memory_bytes)
    env = {**os.environ, **request.env, **(extra_env or {}), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "stratus.executors.worker", str(request_file)]
    return ProcessHandle(request.step, site, command, env, request.workdir, limits)


def follow_log(path: Path, done: threading.Event) -> Iterator[str]:
    """Lines of a log file as they are written, until ``done`` is set and all are read (``tail -f``)."""
    with path.open("r", encoding="utf-8", errors="replace") as log:
        pending = ""
        while True:
            finished = done.is_set()
            chunk = log.readline()
            if chunk:
                pending += chunk
                if pending.endswith("\n"):
                    yield pending.rstrip("\n")
                    pending = ""
                continue
            if finished:
                if pending:
                    yield pending
                return
            time.sleep(_FOLLOW_POLL_S)


class ProcessHandle(Handle):
    """One running worker; a reaper thread turns its exit into a :class:`StepResult`."""

    def __init__(
        self, step: str, site: str, command: list[str], env: dict[str, str], workdir: Path, limits: Limits
    ) -> None:
        self.step = step
        self.site = site
        self.log_path = workdir / LOG_FILE
        self._result_path = workdir / RESULT_FILE
        self._limits = limits
        self._lock = threading.Lock()
        self._reaped = False
        self._cause: FailureKind | None = None
        self._result: StepResult | None = None
        self._done = threading.Event()
        self._started = time.monotonic()
        try:
            with self.log_path.open("ab") as log:
                # Own session: a kill reaches the step's own children too, and a terminal's Ctrl-C
                # reaches only the runner, which then decides what to stop.
                self._proc = subprocess.Popen(
                    command,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            raise ExecutorError(f"cannot start the step's process: {exc}", step=step, site=site) from exc
        self.pid = self._proc.pid
        self._timer: threading.Timer | None = None
        if limits.timeout_s is not None:
            self._timer = threading.Timer(limits.timeout_s, self._kill, ("timeout",))
            self._timer.daemon = True
            self._timer.start()
        threading.Thread(target=self._reap, name=f"reap-{step}", daemon=True).start()

    def wait(self, timeout: float | None = None) -> StepResult | None:
        """The result once the process has been reaped; None when ``timeout`` passes first."""
        self._done.wait(timeout)
        return self._result

    def logs(self) -> Iterator[str]:
        """Lines of the step's log as they are written, until the process has ended and all are read."""
        return follow_log(self.log_path, self._done)

    def cancel(self) -> None:
        """SIGTERM the step's process group, then SIGKILL whatever is left after a grace period."""
        self._kill("cancelled", signal.SIGTERM)
        timer = threading.Timer(CANCEL_GRACE_S, self._kill, ("cancelled",))
        timer.daemon = True
        timer.start()

    def preempt(self) -> None:
        """SIGKILL without warning, as a reclaimed spot machine vanishes."""
        self._kill("preempted")

    def _kill(self, cause: FailureKind, sig: signal.Signals = signal.SIGKILL) -> None:
        with self._lock:
            # Once reaped, the process group id may belong to someone else: never signal it again.
            if self._reaped:
                return
            if self._cause is None:
                self._cause = cause
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, sig)

    def _reap(self) -> None:
        _, status, usage = os.wait4(self._proc.pid, 0)
        duration = time.monotonic() - self._started
        code = os.waitstatus_to_exitcode(status)
        with self._lock:
            self._reaped = True
            self._proc.returncode = code  # Popen must not wait for a pid we already reaped
        if self._timer is not None:
            self._timer.cancel()
        # The worker reports its own peak; ru_maxrss (KiB on Linux) is the fallback for a killed step and
        # overstates small steps, since it also counts the runner's pages copied at fork.
        self._result = self._build(code, duration, int(usage.ru_maxrss) * 1024)
        self._done.set()

    def _build(self, code: int, duration: float, peak: int) -> StepResult:
        report = read_report(self._result_path)
        peak = int(report.get("peak_memory_bytes") or peak)
        metrics: Mapping[str, Any] = report.get("metrics") or {}
        failure: FailureKind | None = None
        error: str | None = None
        if self._cause == "preempted":
            failure, error = "preempted", "preempted: the machine was reclaimed (spot) while the step ran"
        elif self._cause == "timeout":
            limit = self._limits.timeout_s or 0.0
            failure, error = "timeout", f"timed out after {limit:g} s{self._limits.timeout_hint}"
        elif self._cause == "cancelled":
            failure, error = "cancelled", "cancelled"
        elif report.get("failure") == "memory":
            failure = "memory"
            error = f"{report.get('error') or 'ran out of memory'}{self._limits.memory_hint}"
        elif report.get("failure") in ("error", "unreachable"):
            failure = report["failure"]  # the worker caught the step's exception and classified it
            error = report.get("error") or exit_words(code, self.log_path)
        elif code != 0 or not report.get("ok", False):
            failure = "crashed"  # died without a word: a signal, or the interpreter itself failed
            error = exit_words(code, self.log_path)
        return StepResult(
            exit_code=code,
            duration_s=duration,
            peak_memory_bytes=peak,
            metrics=metrics if failure is None else {},
            preempted=failure == "preempted",
            log_path=self.log_path,
            failure=failure,
            error=error,
        )


def read_report(path: Path) -> dict[str, Any]:
    """The worker's ``result.json``; empty when it never wrote one (it crashed or was killed)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def exit_words(code: int, log_path: Path) -> str:
    """How a worker ended without a report, in words, with the end of its log."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        what = f"killed by {name}"
    else:
        what = f"exited with code {code} without a result"
    tail = _tail(log_path, 5)
    return what + ("; last log lines:\n  " + "\n  ".join(tail) if tail else "")


def _tail(path: Path, lines: int) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
