"""The "Serving" section of RESULTS.md: machine, settings, one table per case, targets met or missed.

Unlike the other benches, which append, this one replaces its own section (every earlier "## Serving"
section, with its subsections) and appends the new one at the end, so RESULTS.md stays newest-last and
holds one set of serving figures: the brief asks for one run of all cases on one machine, compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench import results as results_lib
from bench.results import machine, revision
from bench.serving.cases import FailoverRun, Measured
from bench.serving.peers import HAPROXY_DEFAULT, HAPROXY_TUNED, HEALTH, MLSERVER_VERSION
from bench.serving.profile import GatewayProfile

__all__ = ["Report", "render", "replace_section"]


@dataclass(frozen=True)
class Report:
    """Everything one run measured, and how it was asked to run."""

    duration: int
    warmup: int
    drain_s: float
    threads: int
    pinned: bool
    floor: dict[str, float] | str | None
    serve: list[Measured]
    gateway: dict[int, list[Measured]]
    failover: list[FailoverRun]
    tools: str
    elapsed_s: float
    profile: GatewayProfile | str | None = None


def _ms(value: float) -> str:
    return f"{value:.2f}"


def _cells(m: Measured) -> list[str]:
    """req/s, p50, p99, failed: four cells, dashes when the target did not run."""
    if m.result is None:
        return ["—"] * 4
    r = m.result
    return [f"{r.rps:,.0f}", _ms(r.p50_ms), _ms(r.p99_ms), f"{r.failures:,}"]


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _serve(rep: Report) -> list[str]:
    lines = [
        "### Server: Stratus against MLServer (16 connections)",
        "",
        "| server | req/s | p50 ms | p99 ms | failed | note |",
        "|---|--:|--:|--:|--:|---|",
    ]
    lines += [_line([m.label, *_cells(m), m.note]) for m in rep.serve]
    ours = [m for m in rep.serve if m.label.startswith("Stratus") and m.result]
    theirs = [m for m in rep.serve if m.label.startswith("MLServer") and m.result]
    if ours and theirs:
        lines.append("")
    for m in ours:  # each load against MLServer's row of the same protocol (its JSON row for HTTP)
        assert m.result is not None
        same = [t for t in theirs if ("gRPC" in t.label) == ("gRPC" in m.label)]
        if not same or same[0].result is None:
            continue
        ref = same[0].result
        ratio = m.result.rps / ref.rps
        lines.append(
            f"- {m.label} / {same[0].label}: **{ratio:.1f}×** (target ≥ 7×: {_met(ratio >= 7)}); "
            f"p99 {_ms(m.result.p99_ms)} ms (target < 10 ms: {_met(m.result.p99_ms < 10)})."
        )
    first = ours[0] if ours else Measured("", None)
    if isinstance(rep.floor, dict) and first.result:
        lines.append(
            f"Floor: ONNX Runtime in-process, `session.run` on the same row in a loop: "
            f"{rep.floor['calls_per_s']:,.0f} calls/s ({rep.floor['threads']:.0f} intra-op thread); the "
            f"server reaches {first.result.rps / rep.floor['calls_per_s']:.1%} of it (JSON)."
        )
    elif isinstance(rep.floor, str):
        lines.append(f"Floor: not measured: {rep.floor}")
    lines += ["", *_PUBLISHED]
    return [*lines, ""]


# Figures the peers publish themselves, for what this bench cannot run (Triton needs its container).
_PUBLISHED = [
    "Published figures (other machines, models and loads: orders of magnitude, not ratios): MLServer's own "
    "benchmark (SeldonIO/MLServer `benchmarking/README.md`, k6 against a local server, scikit-learn Iris "
    "with adaptive batching, 60 s) reports 1,300 req/s REST and 2,259 req/s gRPC (an earlier version of "
    "the same file, with hey and ghz on a sum model: 1,440 REST, 2,806 gRPC). Triton's perf_analyzer Quick "
    "Start (docs.nvidia.com, Triton user guide, perf_analyzer `quick_start`) shows 1,408 infer/s for the "
    "`simple` model at concurrency 1 with synchronous HTTP calls. Triton itself is not run here: it ships "
    "as a container image, and this machine runs no containers.",
]


def _gateway(rep: Report) -> list[str]:
    lines = [
        "### Proxy hop: direct, through the Stratus gateway, through HAProxy (one server behind)",
        "",
        "Each proxy shares CPU 0 with the server, so at 16 connections (CPU saturated) its own CPU cost "
        "shows as lost throughput and queueing; at 1 connection the CPU is mostly idle and the p50 "
        "difference is the per-hop latency.",
        "",
        "| target | connections | req/s | p50 ms | p99 ms | failed | p50 over direct, ms | note |",
        "|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    verdicts: list[str] = []
    for connections, rows in rep.gateway.items():
        direct = next((m.result for m in rows if m.label == "direct"), None)
        for m in rows:
            over = "—"
            if m.result and direct and m.label != "direct":
                delta = m.result.p50_ms - direct.p50_ms
                over = f"{delta:+.2f}"
                if m.label.startswith("Stratus"):
                    plural = "s" if connections != 1 else ""
                    verdicts.append(f"{connections} connection{plural} {delta:+.2f} ms: {_met(delta <= 0.5)}")
            lines.append(_line([m.label, str(connections), *_cells(m), over, m.note]))
    if verdicts:
        lines += ["", f"Gateway target ≤ +0.5 ms p50 over direct: {'; '.join(verdicts)}."]
    return [*lines, ""]


def _profile(rep: Report) -> list[str]:
    """The gateway's CPU per request and where py-spy found it (bench/serving/profile.py)."""
    if rep.profile is None:
        return []
    lines = ["### Gateway profile: where its CPU per request goes (16 connections, py-spy)", ""]
    if isinstance(rep.profile, str):
        return [*lines, f"Not measured: {rep.profile}", ""]
    p = rep.profile
    lines += [
        f"Gateway CPU per proxied request (from /proc, over the sampled run at {p.rps:,.0f} req/s): "
        f"**{p.user_us:.0f} µs user + {p.system_us:.0f} µs system = {p.user_us + p.system_us:.0f} µs**. "
        "py-spy sees Python frames only: time in uvloop's C event loop and its syscalls is the frame "
        "`Runner.run` itself.",
        "",
        "| samples, own | frame | | samples, inclusive | frame |",
        "|--:|---|---|--:|---|",
    ]
    for (own_share, own), (inc_share, inc) in zip(p.self_frames, p.inclusive_frames, strict=False):
        lines.append(f"| {own_share:.1%} | `{own}` | | {inc_share:.1%} | `{inc}` |")
    cpu = p.user_us + p.system_us
    lines += [
        "",
        "What it says: with 16 connections on the one core the server and the proxy share, a request "
        "queues behind the 15 others, so each µs of proxy CPU per request adds about 16 µs to the p50: "
        f"+0.5 ms allows about **{500 / 16:.0f} µs** of gateway CPU per request; it used {cpu:.0f} µs here. "
        "Most of it is not our Python: uvloop's loop, the four socket operations per proxied request and "
        "uvicorn's ASGI cycle. Cut: each answer (server and gateway) and each request to a site now "
        "leaves in one write instead of two. Not done: SO_REUSEPORT worker processes, because on this "
        "bench every process shares CPU 0, so more processes add no CPU (they would help where the "
        "gateway has cores of its own), and a raw-protocol gateway without uvicorn, too large a change "
        "to make safely here. HAProxy, in C, fits the budget.",
    ]
    return [*lines, ""]


def _failover(rep: Report) -> list[str]:
    lines = [
        "### Failover: two servers behind a proxy, one killed at 1/3 of the run and restarted at 2/3",
        "",
        "16 connections throughout; the server killed is the one that had served more of the load so far "
        "(its share is shown), restarted on the same port. After SIGTERM our server drains (readiness "
        "fails, it keeps serving, then exits 0): the restart waits for the exit. Failed = wrk's non-2xx "
        "responses + socket errors; a request unanswered after 2 s (wrk's default timeout) is a timeout.",
        "",
        "| proxy | signal | requests | non-2xx | socket errors (connect/read/write/timeout) "
        "| failed per kill | killed server's share | timeline (s after load start) |",
        "|---|---|--:|--:|---|--:|--:|---|",
    ]
    verdicts: list[str] = []
    for run in rep.failover:
        r = run.result
        if r is None:
            lines.append(f"| {run.proxy} | {run.signal} | — | — | — | — | — | {run.note} |")
            continue
        share = "—" if run.killed_share is None else f"{run.killed_share:.0%}"
        lines.append(
            f"| {run.proxy} | {run.signal} | {r.requests:,} | {r.non_2xx} | {r.connect}/{r.read}/{r.write}/"
            f"{r.timeout} | **{r.failures}** | {share} | {run.timeline} |"
        )
        if run.proxy.startswith("Stratus"):
            verdicts.append(f"{run.signal} {r.failures}: {_met(r.failures == 0)}")
    if verdicts:
        lines += ["", f"Gateway target 0 failed requests per kill: {'; '.join(verdicts)}."]
    return [*lines, ""]


def render(rep: Report) -> str:
    """The dated section for one run."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    libs = ", ".join(f"{n} {version(n)}" for n in ("onnxruntime", "uvicorn", "uvloop", "httptools", "orjson"))
    pinning = (
        "servers and proxies pinned to CPU 0, wrk to CPU 1 (`taskset`)"
        if rep.pinned
        else "**not pinned** (fewer than 2 CPUs or no taskset): load generator and servers share cores"
    )
    lines = [
        f"## Serving — {now}",
        "",
        f"- Machine: {machine()}; {libs}; {rep.tools}.",
        f"- Stratus: {revision()}. Whole run: {rep.elapsed_s / 60:.1f} min.",
        "- Model: ONNX logistic regression, 30 FP32 inputs (MatMul, Add, Sigmoid; outputs prob and score); "
        "every request is 1 row as V2 JSON, POSTed by wrk (`bench/serving/infer.lua`) to "
        "`/v2/models/logit/infer`; every target's answer is checked against numpy before it is measured.",
        f"- Load: wrk, 1 thread, keep-alive; {rep.duration} s per measured run after a {rep.warmup} s "
        f"warm-up; {pinning}. ONNX Runtime: {rep.threads} intra-op thread(s), 1 inter-op, sequential, "
        "in every server and in the floor.",
        "- Noise: the machine is shared (2 cores, other jobs run beside the bench); the floor row shows how "
        "much CPU this run got (158,214 calls/s on a quiet run, 2026-11-26). Compare rows within one run.",
        "- tritonclient rows: `bench/serving/clients.py`, tritonclient's own asyncio clients (HTTP with its "
        "default binary tensors; gRPC) keeping 16 requests in flight, as `perf_analyzer --concurrency-range "
        "16` does, in one Python process on CPU 1: they measure the client as much as the server.",
        f"- MLServer {MLSERVER_VERSION} (own venv): `parallel_workers: 0`, `debug: false`, a custom runtime "
        "class running ONNX Runtime (`bench/serving/mlserver_onnx.py`).",
        f"- HAProxy: one thread, `option httpchk GET /v2/health/ready`, `{HEALTH}` (the gateway's health "
        f"defaults: 250 ms, 2 down, 1 up); defaults `{'; '.join(HAPROXY_DEFAULT)}`; tuned "
        f"`{'; '.join(HAPROXY_TUNED)}`. Stratus gateway: `policy: latency`, its default health and retry "
        f"settings. Servers drain for {rep.drain_s:g} s on SIGTERM (`--drain-s`).",
        "",
    ]
    lines += _serve(rep)
    lines += _gateway(rep)
    lines += _profile(rep)
    lines += _failover(rep)
    return "\n".join(lines)


def replace_section(results: Path, text: str) -> None:
    """Drop every earlier Serving section from ``results`` and append ``text``."""
    results_lib.replace_section(results, "Serving", text)
