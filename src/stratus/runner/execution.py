"""Running requests on sites' executors: submit, follow the logs, bill the compute, stop on request.

A multi-site step runs several requests as one group: they start together and end together, so when one
member fails the others are cancelled at once rather than left waiting on a peer that will never come
(a rank blocked in a collective, a federated server waiting for a reply).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stratus.executors import Executor, Handle, StepRequest, StepResult
from stratus.planner import Placement
from stratus.runner.context import RunContext
from stratus.runner.events import RunEvent
from stratus.state import utcnow

__all__ = ["Member", "bill", "run_group", "run_request"]

_POLL_S = 0.25


@dataclass
class Member:
    """One request of a group, where it runs, and (once started) its handle and log position."""

    request: StepRequest
    placement: Placement
    label: str = ""  # how its log lines are prefixed ("rank 1"), empty for a lone request
    handle: Handle | None = None
    started: datetime | None = None
    offset: int = 0
    result: StepResult | None = None


def run_request(
    ctx: RunContext, request: StepRequest, placement: Placement, *, preempt: bool, attempt: int
) -> StepResult:
    """Submit to the site's executor, follow the log, bill the compute whatever the outcome."""
    [result] = run_group(ctx, [Member(request, placement)], attempt=attempt, preempt=preempt)
    return result


def run_group(
    ctx: RunContext, members: Sequence[Member], *, attempt: int, preempt: bool = False
) -> list[StepResult]:
    """Start every member, follow them all, cancel the rest as soon as one fails; bill each one."""
    for member in members:
        executor = ctx.sites.executors[member.placement.site]
        member.started = utcnow()
        if member.handle is None:  # a gang's members arrive already submitted, together
            member.handle = executor.submit(member.request)
        placement = member.placement
        ctx.emit(
            RunEvent(
                "step",
                f"{member.label + ' ' if member.label else ''}on {placement.offering} ({placement.pricing})",
                step=member.request.step,
                state="running",
                site=placement.site,
                attempt=attempt,
            )
        )
        if preempt:
            member.handle.preempt()
    cancelled = False
    while any(m.result is None for m in members):
        for member in members:
            if member.result is not None:
                continue
            assert member.handle is not None
            member.result = member.handle.wait(_POLL_S / len(members))
            member.offset = _new_lines(ctx, member, attempt)
            if member.result is not None and not member.result.ok and not cancelled:
                _cancel(members)
                cancelled = True
        if ctx.stop.is_set() and not cancelled:
            _cancel(members)
            cancelled = True
    for member in members:
        bill(ctx, member)
    return [m.result for m in members if m.result is not None]


def _cancel(members: Sequence[Member]) -> None:
    for member in members:
        if member.result is None and member.handle is not None:
            member.handle.cancel()


def bill(ctx: RunContext, member: Member) -> None:
    """Charge the member's compute for its run time at its placement's price."""
    if member.request.step not in ctx.pipeline.steps or member.result is None:
        return  # making a demo dataset is setup, not a billed step
    placement = member.placement
    executor: Executor = ctx.sites.executors[placement.site]
    pricing = ctx.placer.pricing(placement)
    ctx.biller.compute(
        step=member.request.step,
        placement=placement,
        executor=executor,
        resources=member.request.resources,
        list_price_per_hour_usd=pricing.list_price_per_hour_usd,
        accelerator=pricing.accelerator,
        seconds=member.result.duration_s,
        started=member.started or utcnow(),
        ended=utcnow(),
    )


def _new_lines(ctx: RunContext, member: Member, attempt: int) -> int:
    assert member.handle is not None
    log: Path = member.handle.log_path
    try:
        with log.open("rb") as f:
            f.seek(member.offset)
            chunk = f.read()
    except OSError:
        return member.offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return member.offset
    prefix = f"[{member.label}] " if member.label else ""
    for line in chunk[: end + 1].decode("utf-8", errors="replace").splitlines():
        if line.strip():
            ctx.emit(
                RunEvent(
                    "log",
                    prefix + line,
                    step=member.request.step,
                    site=member.placement.site,
                    attempt=attempt,
                )
            )
    return member.offset + end + 1
