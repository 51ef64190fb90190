"""Run wrk against a V2 inference URL and read its report.

wrk (Debian's 4.1) is a closed-loop, keep-alive load generator: each connection sends its next request as
soon as the previous answer arrives, so req/s at 16 connections is throughput under saturation and the
latency percentiles are per-request service times (``--latency`` prints 50/75/90/99 %). Failed requests
are wrk's "Non-2xx or 3xx responses" plus its socket errors (connect, read, write, timeout).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.serving.model import MODEL_NAME
from bench.serving.processes import LOAD_CPU, pin

__all__ = ["LUA", "WrkResult", "finish", "parse", "run", "spawn"]

LUA = Path(__file__).resolve().parent / "infer.lua"
# With a binary body: the length of its JSON header (Inference-Header-Content-Length) in the env.
BINARY_LUA = Path(__file__).resolve().parent / "infer_binary.lua"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured; latencies in milliseconds."""

    connections: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    connect: int
    read: int
    write: int
    timeout: int
    raw: str

    @property
    def socket_errors(self) -> int:
        """Connect + read + write + timeout errors."""
        return self.connect + self.read + self.write + self.timeout

    @property
    def failures(self) -> int:
        """Requests that did not get a 2xx/3xx answer: non-2xx responses plus socket errors."""
        return self.non_2xx + self.socket_errors


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse(text: str, connections: int) -> WrkResult:
    """Read wrk's ``--latency`` report; raises ValueError (with the report) when a line is missing."""

    def need(pattern: str) -> re.Match[str]:
        match = re.search(pattern, text, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk output has no line matching {pattern!r}:\n{text}")
        return match

    total = need(r"^\s*(\d+) requests in " + _DURATION)
    p50 = need(r"^\s*50(?:\.000)?%\s+" + _DURATION)
    p99 = need(r"^\s*99(?:\.000)?%\s+" + _DURATION)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    connect, read, write, timeout = (int(g) for g in errors.groups()) if errors else (0, 0, 0, 0)
    seconds = _ms(total.group(2), total.group(3)) / 1e3
    requests = int(total.group(1))
    return WrkResult(
        connections=connections,
        requests=requests,
        seconds=seconds,
        rps=requests / seconds if seconds else 0.0,
        p50_ms=_ms(p50.group(1), p50.group(2)),
        p99_ms=_ms(p99.group(1), p99.group(2)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        connect=connect,
        read=read,
        write=write,
        timeout=timeout,
        raw=text,
    )


def _argv(port: int, connections: int, seconds: float, lua: Path = LUA) -> list[str]:
    url = f"http://127.0.0.1:{port}/v2/models/{MODEL_NAME}/infer"
    # One wrk thread: it has one CPU of its own. wrk takes whole seconds.
    duration = f"{max(1, round(seconds))}s"
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}", "--latency", "-s", str(lua), url]
    return pin(LOAD_CPU, args)


def spawn(
    port: int, connections: int, seconds: float, body: Path, header_len: int | None = None
) -> subprocess.Popen[str]:
    """Start wrk in the background (the failover case signals servers while it runs); a ``header_len``
    says ``body`` is a binary-tensor request whose JSON header is that long."""
    env = {**os.environ, "STRATUS_BENCH_BODY": str(body)}
    if header_len is not None:
        env["STRATUS_BENCH_HEADER_LEN"] = str(header_len)
    lua = LUA if header_len is None else BINARY_LUA
    return subprocess.Popen(
        _argv(port, connections, seconds, lua),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def finish(popen: subprocess.Popen[str], connections: int, seconds: float) -> WrkResult:
    """Wait for a spawned wrk and parse its report; raises RuntimeError when wrk failed."""
    try:
        out, _ = popen.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        popen.kill()
        out, _ = popen.communicate()
        raise RuntimeError(f"wrk did not finish in {seconds + 60:.0f} s:\n{out}") from None
    if popen.returncode != 0:
        raise RuntimeError(f"wrk exited with {popen.returncode}:\n{out}")
    return parse(out, connections)


def run(port: int, connections: int, seconds: float, body: Path, header_len: int | None = None) -> WrkResult:
    """One wrk run of ``seconds`` at ``connections`` keep-alive connections."""
    return finish(spawn(port, connections, seconds, body, header_len), connections, seconds)
