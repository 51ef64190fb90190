"""Long-running helper processes (storage sandboxes, model servers, gateways) started, found and stopped.

Such processes outlive the command that started them (a session of their own, so a terminal's Ctrl-C
reaches only the supervisor that should stop them in order), and are later found again by PID from a
state file. PIDs are reused once a process has gone, so a recorded PID counts as ours only while its
command line still carries a marker we chose.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["command_line", "free_ports", "installed_binary", "is_running", "spawn", "stop_process"]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports.

    They are bound all at once so the kernel hands out distinct ports; a small race remains between close
    and the server's bind, which the caller's readiness check turns into a clear failure.
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def installed_binary(name: str) -> str | None:
    """A program a Python package installed: beside this interpreter (the venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def spawn(command: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own, output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=dict(env) if env is not None else None,
        )


def command_line(pid: int) -> list[str] | None:
    """The argv of a live process; None when it is gone (a zombie has an empty command line)."""
    if pid <= 0:
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0")


def is_running(pid: int, marker: str | Sequence[str], process: subprocess.Popen[bytes] | None = None) -> bool:
    """True while ``pid`` is alive and still ours.

    ``marker`` is either a string the command line must contain, or the whole argv the process was
    started with (a list), which must match exactly: the stronger check, since another user of the
    machine may run the same program. With the ``Popen`` at hand, its exit status decides (our own zombie
    children count as gone).
    """
    if process is not None:
        return process.poll() is None
    argv = command_line(pid)
    if argv is None:
        return False
    if isinstance(marker, str):
        return marker in " ".join(argv)
    return argv == list(marker)


def stop_process(
    pid: int,
    marker: str | Sequence[str],
    process: subprocess.Popen[bytes] | None = None,
    *,
    hard: bool = False,
    timeout_s: float = 15.0,
) -> None:
    """SIGTERM (SIGKILL with ``hard``, or once ``timeout_s`` has passed) and wait until gone. Idempotent."""
    if is_running(pid, marker, process):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while is_running(pid, marker, process) and time.monotonic() < deadline:
            time.sleep(0.05)
        if is_running(pid, marker, process):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if process is not None:
        process.wait()
