"""Where the gateway's CPU goes per proxied request: py-spy samples plus the kernel's CPU accounting.

One server and our gateway in front of it, both on the server CPU as in the proxy-hop case, under wrk at
16 connections. While wrk runs, ``py-spy record --format raw`` samples the gateway (Python frames only:
time in uvloop's C code and in syscalls shows as the event loop's own frame, ``Runner.run``), and
``/proc/PID/stat`` gives the gateway's user and system CPU over the run, hence CPU µs per request.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.serving import wrk
from bench.serving.processes import Proc

__all__ = ["GatewayProfile", "profile_gateway", "top_frames"]

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class GatewayProfile:
    """CPU per request (user, system µs), requests/s of the run, and the top frames (share, frame)."""

    user_us: float
    system_us: float
    rps: float
    self_frames: list[tuple[float, str]]
    inclusive_frames: list[tuple[float, str]]


def _cpu_s(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK  # utime, stime


def top_frames(raw: str, count: int = 12) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """The frames with most samples of their own, and with most samples under them, from py-spy raw."""
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        samples = int(n)
        total += samples
        frames = stack.split(";")
        own[frames[-1]] += samples
        for frame in set(frames):
            under[frame] += samples
    if not total:
        return [], []
    noise = ("<module>", "_run_code", "_run_module_as_main", "main (", "serve (", "Server.run", "asyncio_run")
    inclusive = [(n / total, f) for f, n in under.most_common() if not any(w in f for w in noise)]
    return [(n / total, f) for f, n in own.most_common(count)], inclusive[:count]


def profile_gateway(server: Proc, gateway: Proc, body: Path, seconds: int) -> GatewayProfile:
    """Sample ``gateway`` (in front of ``server``) under wrk at 16 connections for ``seconds``."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    assert gateway.popen is not None
    pid = gateway.popen.pid
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "gateway.raw"
        load = wrk.spawn(gateway.port, 16, seconds + 2, body)
        time.sleep(1.0)
        user0, sys0 = _cpu_s(pid)
        argv = [spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "200", "-f", "raw", "-o", str(out)]
        done = subprocess.run([*argv, "--nonblocking"], capture_output=True, text=True, timeout=seconds + 60)
        user1, sys1 = _cpu_s(pid)
        result = wrk.finish(load, 16, seconds + 2)
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"py-spy failed ({done.returncode}): {done.stderr[-800:]}")
        own, inclusive = top_frames(out.read_text())
    served = result.rps * seconds  # requests during the sampled window, at the run's average rate
    return GatewayProfile(
        user_us=(user1 - user0) / served * 1e6,
        system_us=(sys1 - sys0) / served * 1e6,
        rps=result.rps,
        self_frames=own,
        inclusive_frames=inclusive,
    )
