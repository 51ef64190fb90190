"""The "DR" section of bench/RESULTS.md: what each client saw in each drill, and how long healing took."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bench.dr.load import ClientResult
from bench.dr.scenarios import BACK_IN_DNS, BACK_IN_ROTATION, RECOVERED, DrillResult, Settings
from bench.results import revision

__all__ = ["Report", "render", "targets_met"]

TITLE = "DR — serving through health-checked DNS"
_TIMES = (
    ("site ejected", "site ejected by every gateway"),
    ("server restarted", "server ready again"),
    (BACK_IN_ROTATION, "site back in rotation"),
    ("gateway dropped from DNS", "gateway out of DNS"),
    ("gateway restarted", "gateway ready again"),
    (BACK_IN_DNS, "gateway back in DNS"),
    (RECOVERED, "all whole again"),
)


@dataclass
class Report:
    """A whole run: its drills, how they were run, and where the stores were."""

    drills: list[DrillResult]
    settings: Settings
    stores: str
    pinned: bool
    elapsed_s: float
    machine: str  # taken before the bench pins itself to one CPU, so it counts the machine's cores


def targets_met(drill: DrillResult) -> bool:
    """0 failures for the re-resolving client always, and for the naive one too when only a server died."""
    if drill.clients["resolving"].failures:
        return False
    return drill.scenario != "server" or drill.clients["naive"].failures == 0


def _clients(result: ClientResult, with_retries: bool) -> str:
    text = f"{result.failures} of {result.requests}"
    if with_retries:
        text += f" ({result.retries} retried)"
    elif result.failure_window_s is not None:
        text += f" over {result.failure_window_s:.2f} s"
    return text


def _time(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def render(report: Report) -> str:
    """Markdown for the section (replacing any earlier "DR" section)."""
    settings = report.settings
    today = datetime.now(UTC).date().isoformat()
    lines = [
        f"## {TITLE}",
        "",
        f"`python -m bench.dr` on {today}, {report.machine}; revision {revision()}; "
        f"{report.elapsed_s:.0f} s in all.",
        "",
        "One deployment (`stratus serve export.onnx --sites aws-us-east,gcp-eu-west --gateways 2 "
        "--dns-port P`): two model servers, two gateways on 127.0.0.1 and 127.0.0.2 (same port), the "
        "health-checked DNS responder (TTL 2 s, gateway checks every 0.25 s), all supervised. "
        f"Stores: {report.stores}. The model was written at aws-us-east and replicated to gcp-eu-west by "
        "`stratus run`, and each server loads it from its own site's store. "
        f"Under steady load from {settings.threads} threads of each client at once (closed loop, keep-alive, "
        f"{settings.warmup_s:.0f} s before the kill, {settings.settle_s:.0f} s after the deployment was "
        "whole again; every answer checked against numpy), the bench SIGKILLs by PID from the deployment "
        "record: (1) gcp-eu-west's model server; (2) gateway-2; (3) the whole gcp-eu-west site: its server, "
        "gateway-2 and its store, at one instant. "
        + (
            "The deployment is pinned to CPU 0, the clients to CPU 1."
            if report.pinned
            else "Nothing is pinned (one CPU)."
        ),
        "",
        "Clients: **re-resolving** is `stratus.serving.dns.client.ResolvingClient` (asks the responder, "
        "honours the TTL; on connection refused, or reset before an answer, re-resolves and retries once "
        "on another gateway). **Naive** is the anchor: it resolves the name once, keeps one address (its "
        "threads spread over both), never re-resolves, never retries; after a failure it waits 50 ms "
        "before its next request, so its count of failures depends on that pause and its failure window "
        "(first to last failure) does not.",
        "",
        "| drill | killed | re-resolving client: failed of sent | naive client: failed of sent | target |",
        "|---|---|---|---|---|",
    ]
    for drill in report.drills:
        target = "0 failures, both clients" if drill.scenario == "server" else "0 failures, re-resolving"
        met = "met" if targets_met(drill) else "**missed**"
        lines.append(
            f"| {drill.scenario} | {'; '.join(drill.killed)} | {_clients(drill.clients['resolving'], True)} "
            f"| {_clients(drill.clients['naive'], False)} | {target}: {met} |"
        )
    lines += [
        "",
        "Seconds from the kill (— where the drill does not involve it, or it was not seen):",
        "",
        "| drill | " + " | ".join(label for _key, label in _TIMES) + " |",
        "|---|" + "---|" * len(_TIMES),
    ]
    for drill in report.drills:
        cells = [_time(drill.milestones.get(key)) for key, _label in _TIMES]
        lines.append(f"| {drill.scenario} | " + " | ".join(cells) + " |")
    notes = [f"- {drill.scenario}: {note}" for drill in report.drills for note in drill.notes]
    samples = [
        f"- {drill.scenario}, {kind}: {'; '.join(result.samples)}"
        for drill in report.drills
        for kind, result in drill.clients.items()
        if result.samples
    ]
    if notes:
        lines += ["", "Notes:", "", *notes]
    if samples:
        lines += ["", "First failures each client saw (seconds from the kill):", "", *samples]
    lines += [
        "",
        "Reading: a dead server costs no client anything (the gateway retries the request on the other "
        "site and ejects the dead one); a dead gateway costs a client that holds one address every request "
        "until the supervisor has it listening again, and costs the re-resolving client nothing (a refused "
        "or cut connection is retried once on the other address). A server comes back slower than a "
        "gateway: the supervisor waits 1 s before restarting it, and ONNX Runtime loads the model.",
    ]
    return "\n".join(lines) + "\n"
