"""The four cases: the ORT floor, server against MLServer, the proxy hop, and failover under load.

Each case starts what it needs, measures with wrk, and stops everything it started, also on error. A
peer that cannot run (not installed, gateway module not written yet, a start that fails) becomes a row
with a note instead of ending the run, so one command always produces a whole report.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.serving import ours, peers, wrk
from bench.serving.processes import (
    LOAD_CPU,
    SERVER_CPU,
    Proc,
    StartError,
    free_port,
    pin,
    start,
    stop,
    wait_ready,
)
from bench.serving.profile import GatewayProfile, profile_gateway
from bench.serving.wrk import WrkResult

__all__ = [
    "Context",
    "FailoverRun",
    "Measured",
    "failover_case",
    "floor_case",
    "gateway_case",
    "profile_case",
    "serve_case",
]

ProxyFactory = Callable[[str, list[int]], Proc]  # (process name, upstream ports)


@dataclass(frozen=True)
class Context:
    """What every case shares: scratch folder, model, request body file and the timing knobs."""

    work: Path
    model: Path
    body: Path
    duration: int
    warmup: int
    drain_s: float
    threads: int
    binary: Path | None = None  # the same request with binary tensor data
    header_len: int = 0  # its JSON header's length (Inference-Header-Content-Length)


@dataclass(frozen=True)
class Measured:
    """One steady-state wrk run against one target, or why there is none (``note``)."""

    label: str
    result: WrkResult | None
    note: str = ""


@dataclass(frozen=True)
class FailoverRun:
    """One failover run: a proxy, a signal, what wrk saw, and when things happened (s after wrk start)."""

    proxy: str
    signal: str
    result: WrkResult | None
    note: str = ""
    killed_share: float | None = None
    timeline: str = ""


class _Fleet:
    """The processes a case started; stopped in reverse order when the case ends, however it ends."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def up(self, proc: Proc, timeout_s: float = 60.0) -> Proc:
        """Start ``proc`` and wait until it answers an inference correctly."""
        self.procs.append(start(proc))
        wait_ready(proc, timeout_s)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc, signal.SIGKILL if proc.name.startswith("fo-") else signal.SIGTERM, timeout_s=10)


@contextmanager
def _fleet() -> Iterator[_Fleet]:
    fleet = _Fleet()
    try:
        yield fleet
    finally:
        fleet.close()


def _measure(ctx: Context, proc: Proc, connections: int, binary: bool = False) -> WrkResult:
    """A warm-up run (discarded), then the measured one; ``binary`` posts the binary-tensor body."""
    body, header_len = (ctx.binary, ctx.header_len) if binary and ctx.binary else (ctx.body, None)
    if ctx.warmup:
        wrk.run(proc.port, connections, ctx.warmup, body, header_len)
    result = wrk.run(proc.port, connections, ctx.duration, body, header_len)
    _show(proc.name + (" bin" if binary else ""), connections, result)
    return result


def _show(name: str, connections: int, result: WrkResult) -> None:
    print(
        f"  {name:>16} c={connections:<3} {result.rps:9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
        f"p99 {result.p99_ms:6.2f} ms  failed {result.failures}",
        flush=True,
    )


def _client_load(ctx: Context, protocol: str, port: int, concurrency: int = 16) -> WrkResult:
    """tritonclient's async ``protocol`` client in a closed loop (bench/serving/clients.py), pinned to
    the load CPU; its figures in a WrkResult so that the tables treat every load alike."""
    argv = [sys.executable, "-m", "bench.serving.clients", protocol, str(port), str(concurrency)]
    if ctx.warmup:
        subprocess.run(pin(LOAD_CPU, [*argv, str(ctx.warmup)]), capture_output=True, timeout=120)
    done = subprocess.run(
        pin(LOAD_CPU, [*argv, str(ctx.duration)]), capture_output=True, text=True, timeout=ctx.duration + 120
    )
    if done.returncode != 0:
        raise RuntimeError(f"tritonclient {protocol} load exited {done.returncode}: {done.stderr[-1500:]}")
    got = orjson.loads(done.stdout.strip().splitlines()[-1])
    requests, failures = int(got["requests"]), int(got["failures"])
    result = WrkResult(
        connections=concurrency,
        requests=requests,
        seconds=got["seconds"],
        rps=requests / got["seconds"] if got["seconds"] else 0.0,
        p50_ms=got["p50_ms"],
        p99_ms=got["p99_ms"],
        non_2xx=failures,
        connect=0,
        read=0,
        write=0,
        timeout=0,
        raw=done.stdout + done.stderr,
    )
    _show(f"tritonclient {protocol}", concurrency, result)
    return result


def _why(exc: Exception) -> str:
    """The first line of an error, for a table cell; the whole of it goes to stdout."""
    print(f"  ! {exc}", flush=True)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def floor_case(ctx: Context) -> dict[str, float] | str:
    """ORT calls/s in a child pinned to the server CPU; a string says why it failed."""
    argv = pin(SERVER_CPU, [sys.executable, "-m", "bench.serving.floor", str(ctx.model), str(ctx.duration)])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=ctx.duration + 120)
    if done.returncode != 0:
        return _why(RuntimeError(f"floor exited with {done.returncode}: {done.stderr[-1500:]}"))
    figures: dict[str, float] = orjson.loads(done.stdout.strip().splitlines()[-1])
    print(f"  floor: {figures['calls_per_s']:.0f} calls/s", flush=True)
    return figures


def _attempt(rows: list[Measured], label: str, measure: Callable[[], WrkResult]) -> None:
    """Append ``label``'s figures, or a row saying why it could not be measured."""
    try:
        rows.append(Measured(label, measure()))
    except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as exc:
        rows.append(Measured(label, None, _why(exc)))


def serve_case(ctx: Context, mlserver: Path | str) -> list[Measured]:
    """Our server, then MLServer (``mlserver`` is its executable, or why it cannot run), 16 connections:
    JSON and binary tensors with wrk, then tritonclient's async HTTP (binary) and gRPC clients."""
    rows: list[Measured] = []
    with _fleet() as fleet:
        grpc_port = free_port()
        proc = fleet.up(ours.server(ctx.work, "stratus", ctx.model, ctx.drain_s, grpc_port=grpc_port))
        _attempt(rows, "Stratus server, JSON (wrk)", lambda: _measure(ctx, proc, 16))
        _attempt(rows, "Stratus server, binary (wrk)", lambda: _measure(ctx, proc, 16, binary=True))
        _attempt(
            rows,
            "Stratus server, HTTP binary (tritonclient.http.aio)",
            lambda: _client_load(ctx, "http", proc.port),
        )
        _attempt(
            rows, "Stratus server, gRPC (tritonclient.grpc.aio)", lambda: _client_load(ctx, "grpc", grpc_port)
        )
    label = f"MLServer {peers.MLSERVER_VERSION}"
    if isinstance(mlserver, str):
        return [*rows, Measured(f"{label}, JSON (wrk)", None, mlserver)]
    try:
        with _fleet() as fleet:
            ml = peers.mlserver(mlserver, ctx.work, ctx.model, ctx.threads)
            proc = fleet.up(ml, timeout_s=180)
            _attempt(rows, f"{label}, JSON (wrk)", lambda: _measure(ctx, proc, 16))
            ml_grpc = peers.mlserver_grpc_port(ctx.work)
            _attempt(
                rows, f"{label}, gRPC (tritonclient.grpc.aio)", lambda: _client_load(ctx, "grpc", ml_grpc)
            )
    except (StartError, RuntimeError, ValueError) as exc:
        rows.append(Measured(f"{label}, JSON (wrk)", None, _why(exc)))
    return rows


def gateway_case(ctx: Context, gateway_missing: str | None) -> dict[int, list[Measured]]:
    """Direct, through our gateway and through HAProxy, at 16 connections and at 1; one server behind."""
    out: dict[int, list[Measured]] = {16: [], 1: []}
    with _fleet() as fleet:
        server = fleet.up(ours.server(ctx.work, "direct", ctx.model, ctx.drain_s))
        targets: list[tuple[str, Proc | None, str]] = [("direct", server, "")]
        gateway: Proc | None = None
        note = gateway_missing or ""
        if gateway_missing is None:
            try:
                gateway = fleet.up(ours.gateway(ctx.work, "gateway", [server.port]))
            except (StartError, RuntimeError) as exc:
                gateway, note = None, f"did not start: {_why(exc)}"
        targets.append(("Stratus gateway", gateway, note))
        haproxy: Proc | None = None
        note = ""
        try:
            haproxy = fleet.up(peers.haproxy(ctx.work, "haproxy", [server.port], peers.HAPROXY_DEFAULT))
        except (StartError, RuntimeError, ValueError) as exc:
            note = f"did not start: {_why(exc)}"
        targets.append((f"HAProxy {peers.haproxy_version()}", haproxy, note))
        for connections in (16, 1):
            for label, proc, why in targets:
                if proc is None:
                    out[connections].append(Measured(label, None, why))
                    continue
                try:
                    out[connections].append(Measured(label, _measure(ctx, proc, connections)))
                except (RuntimeError, ValueError) as exc:
                    out[connections].append(Measured(label, None, _why(exc)))
    return out


def profile_case(ctx: Context, gateway_missing: str | None) -> GatewayProfile | str:
    """The gateway's CPU per request and its top frames under wrk (bench/serving/profile.py)."""
    if gateway_missing:
        return gateway_missing
    try:
        with _fleet() as fleet:
            server = fleet.up(ours.server(ctx.work, "prof-server", ctx.model, ctx.drain_s))
            gateway = fleet.up(ours.gateway(ctx.work, "prof-gateway", [server.port]))
            found = profile_gateway(server, gateway, ctx.body, ctx.duration)
    except (StartError, RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as exc:
        return _why(exc)
    print(
        f"  gateway CPU per request: {found.user_us:.0f} µs user + {found.system_us:.0f} µs system",
        flush=True,
    )
    return found


def _infer_count(port: int) -> int:
    """Inference requests a server of ours has answered so far, from its /metrics; 0 when unreachable."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except OSError:
        return 0
    pattern = r'^stratus_serving_requests_total\{[^}]*route="/v2/models/\{m\}/infer"[^}]*\} ([\d.e+]+)$'
    return int(sum(float(m) for m in re.findall(pattern, text, re.MULTILINE)))


def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def _failover_once(
    ctx: Context, proxy_label: str, make_proxy: ProxyFactory, sig: signal.Signals
) -> FailoverRun:
    """Two servers behind a proxy, wrk for ``duration``; at 1/3 signal the busier one, at 2/3 restart it.

    The busier server is the one killed, so that a proxy that sends everything to one site cannot score
    0 failures by losing the idle one. After SIGTERM the server drains (readiness fails, it serves for
    ``drain_s``, exits): it is restarted when it has exited, at 2/3 or later.
    """
    tag = f"fo-{proxy_label.lower().replace(' ', '-')}-{sig.name.lower()}"
    with _fleet() as fleet:
        servers = [fleet.up(ours.server(ctx.work, f"{tag}-{side}", ctx.model, ctx.drain_s)) for side in "ab"]
        proxy = fleet.up(make_proxy(f"{tag}-proxy", [s.port for s in servers]))
        time.sleep(1.0)  # a few health-check rounds: both servers are known up before the load starts
        before = [_infer_count(s.port) for s in servers]
        t0 = time.monotonic()
        load = wrk.spawn(proxy.port, 16, ctx.duration, ctx.body)
        _sleep_until(t0 + ctx.duration / 3)
        served = [_infer_count(s.port) - b for s, b in zip(servers, before, strict=True)]
        victim = servers[0] if served[0] >= served[1] else servers[1]
        share = max(served) / sum(served) if sum(served) else None
        assert victim.popen is not None
        os.kill(victim.popen.pid, sig)
        events = [f"{sig.name} {victim.name[-1]} at {time.monotonic() - t0:.1f} s"]
        try:
            victim.popen.wait(ctx.drain_s + 15)
        except subprocess.TimeoutExpired:
            events.append("it did not exit: SIGKILL")
            victim.popen.kill()
            victim.popen.wait()
        events.append(f"exited ({victim.popen.returncode}) {time.monotonic() - t0:.1f} s")
        _sleep_until(t0 + 2 * ctx.duration / 3)
        start(victim)
        events.append(f"restarted {time.monotonic() - t0:.1f} s")
        try:
            wait_ready(victim, max(1.0, ctx.duration + t0 - time.monotonic()))
            events.append(f"ready {time.monotonic() - t0:.1f} s")
        except StartError:
            events.append("not ready before the load ended")
        result = wrk.finish(load, 16, ctx.duration)
    print(
        f"  {proxy_label:>22} {sig.name:7} {result.requests} requests, failed {result.failures} "
        f"(non-2xx {result.non_2xx}, connect {result.connect}, read {result.read}, write {result.write}, "
        f"timeout {result.timeout}); {', '.join(events)}",
        flush=True,
    )
    return FailoverRun(proxy_label, sig.name, result, "", share, ", ".join(events))


def failover_case(ctx: Context, gateway_missing: str | None, tuned_haproxy: bool) -> list[FailoverRun]:
    """Every proxy under SIGKILL, then under SIGTERM."""
    proxies: list[tuple[str, ProxyFactory | None, str]] = [
        (
            "Stratus gateway",
            None if gateway_missing else (lambda name, ports: ours.gateway(ctx.work, name, ports)),
            gateway_missing or "",
        ),
        (
            "HAProxy defaults",
            lambda name, ports: peers.haproxy(ctx.work, name, ports, peers.HAPROXY_DEFAULT),
            "",
        ),
    ]
    if tuned_haproxy:
        proxies.append(
            (
                "HAProxy tuned",
                lambda name, ports: peers.haproxy(ctx.work, name, ports, peers.HAPROXY_TUNED),
                "",
            )
        )
    runs: list[FailoverRun] = []
    for sig in (signal.SIGKILL, signal.SIGTERM):
        for label, make, why in proxies:
            if make is None:
                runs.append(FailoverRun(label, sig.name, None, why))
                continue
            try:
                runs.append(_failover_once(ctx, label, make, sig))
            except (StartError, RuntimeError, ValueError) as exc:
                runs.append(FailoverRun(label, sig.name, None, _why(exc)))
    return runs
