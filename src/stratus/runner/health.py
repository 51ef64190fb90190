"""Sites that are down for this run: found by a short store probe at plan time, or by a step failing.

A down site is down for the whole run, not just for the step that found out: the planner places nothing
more there, and its store is replaced by one that refuses at once, so no later copy, lookup or replica
write waits out an SDK's timeouts and retries against it. The plan is re-solved around it with the same
cost model, residency and policy as the first plan; when nothing compliant is left the run fails with
the planner's reasons. Steps already finished there keep their place (their outputs may have replicas
elsewhere).

:func:`probe_store` is the one place that asks a store whether it answers; it is shaped like
``stratus.storage.health.probe`` so the two can be swapped.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from stratus.planner import Plan
from stratus.runner.context import RunContext
from stratus.runner.events import RunEvent
from stratus.runner.incidents import Moved
from stratus.storage import SiteStore
from stratus.storage.backend import Backend, Upload
from stratus.storage.store import run

__all__ = [
    "DEFAULT_PROBE_TIMEOUT_S",
    "SiteDownError",
    "announce_replan",
    "mark_down",
    "plan_sites",
    "plan_with_healthy_sites",
    "probe_store",
    "probe_timeout_s",
]

#: How long a site's store gets to answer the plan-time probe before the site counts as down. A store
#: answers one HEAD in milliseconds (loopback) to a few hundred (a cloud region); five seconds rides out
#: a slow one without letting a dead endpoint, or an SDK retrying against it, hold the run up.
DEFAULT_PROBE_TIMEOUT_S = 5.0
PROBE_TIMEOUT_ENV = "STRATUS_PROBE_TIMEOUT_S"

# Under the store's root and never a content address, so never an object anyone wrote.
_PROBE_KEY = "objects/.stratus-health"


class SiteDownError(ConnectionError):
    """Raised by the store of a site marked down: nothing is sent to it for the rest of the run."""


def probe_timeout_s() -> float:
    """The probe timeout: ``STRATUS_PROBE_TIMEOUT_S`` when set to a positive number, else the default."""
    raw = os.environ.get(PROBE_TIMEOUT_ENV, "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_PROBE_TIMEOUT_S
    return value if value > 0 else DEFAULT_PROBE_TIMEOUT_S


def probe_store(store: SiteStore, timeout_s: float) -> str | None:
    """None when the store answers a lookup of a key that never exists within ``timeout_s``; else why not.

    "Not found" is an answer. A refused or reset connection, a 5xx, denied access or silence is not; the
    request is cancelled at the timeout, so a retrying SDK cannot keep the run waiting.
    """

    async def ask() -> None:
        await asyncio.wait_for(store.backend.size(f"{store.root}/{_PROBE_KEY}"), timeout_s)

    try:
        run(ask)
    except TimeoutError:
        return f"its store {store.url} did not answer within {timeout_s:g} s"
    except Exception as exc:  # every SDK fails its own way; all of them mean "cannot use it now"
        return f"its store {store.url} is unreachable: {type(exc).__name__}: {str(exc) or repr(exc)}"
    return None


def plan_sites(ctx: RunContext, plan: Plan) -> list[str]:
    """The sites a plan runs steps at, then the pipeline's dataset sites (where inputs are read from)."""
    sites = [p.site for p in plan.placements]
    sites += [q.site for p in plan.placements for q in p.participants]
    sites += [dataset.site for dataset in ctx.pipeline.datasets.values()]
    return list(dict.fromkeys(s for s in sites if s in ctx.platform.sites))


def plan_with_healthy_sites(ctx: RunContext, pinned: Mapping[str, str]) -> Plan:
    """Plan, probe the sites that plan needs, mark the silent ones down and re-plan, until all answer.

    Each site is probed once, all of a round's sites at once, so a run with a site down waits about one
    probe timeout per re-plan, not one per step or object. Raises InfeasibleError (with the planner's
    reasons, every down site among them) when no compliant placement is left.
    """
    timeout = probe_timeout_s()
    probed: set[str] = set()
    plan = ctx.placer.plan(pinned=pinned)
    while True:
        fresh = [s for s in plan_sites(ctx, plan) if s not in probed and not ctx.incidents.is_down(s)]
        if not fresh:
            return plan
        probed.update(fresh)
        down = {site: why for site, why in _probe_all(ctx, fresh, timeout).items() if why is not None}
        if not down:
            return plan
        for site, why in down.items():
            mark_down(ctx, site, why)
        before = {p.step: p.site for p in plan.placements}
        plan = ctx.placer.plan(pinned=pinned)
        moved = [
            Moved(p.step, before.get(p.step), p.site)
            for p in plan.placements
            if p.step not in pinned and before.get(p.step) != p.site
        ]
        announce_replan(ctx, down, moved)


def mark_down(ctx: RunContext, site: str, why: str) -> bool:
    """Mark ``site`` down for the rest of the run; False when it already was.

    The planner drops it for every step, and its store is swapped (in the dict the data plane shares)
    for one that refuses at once, naming the site and the reason.
    """
    if not ctx.incidents.site_down(site, why):
        return False
    ctx.placer.mark_down(site, why)
    store = ctx.sites.stores.get(site)
    if store is not None:
        ctx.sites.stores[site] = SiteStore(
            store.site, store.url, _Refusing(why), store.root, store.jurisdiction
        )
    return True


def _probe_all(ctx: RunContext, sites: Iterable[str], timeout_s: float) -> dict[str, str | None]:
    stores = {s: ctx.sites.stores[s] for s in sites if s in ctx.sites.stores}
    if not stores:
        return {}
    with ThreadPoolExecutor(max_workers=len(stores), thread_name_prefix="probe") as pool:
        answers = {site: pool.submit(probe_store, store, timeout_s) for site, store in stores.items()}
        return {site: answer.result() for site, answer in answers.items()}


def announce_replan(ctx: RunContext, down: Mapping[str, str], moved: list[Moved]) -> None:
    """Say which sites are down and where the re-plan moved steps: a note a person reads
    (``site X is down (why); re-planned steps A, B onto Y``) and a record for ``--json``."""
    cause = "; ".join(f"site {site} is down ({why})" for site, why in down.items())
    if moved:
        targets = sorted({m.to_site for m in moved})
        steps = ", ".join(m.step for m in moved)
        message = f"{cause}; re-planned steps {steps} onto {', '.join(targets)}"
    else:
        message = f"{cause}; no remaining step was planned there"
    ctx.incidents.replanned(cause, moved)
    ctx.emit(RunEvent("note", message))


class _Refusing(Backend):
    """The backend of a site marked down: every call fails at once with the reason."""

    def __init__(self, why: str) -> None:
        self.why = why

    def _refuse(self) -> SiteDownError:
        return SiteDownError(f"the site is down for this run ({self.why}); nothing more is sent to it")

    async def size(self, key: str) -> int | None:
        raise self._refuse()

    async def read(self, key: str, start: int, end: int) -> bytes:
        raise self._refuse()

    def open_read(self, key: str) -> BinaryIO:
        raise self._refuse()

    async def put(self, key: str, data: bytes) -> None:
        raise self._refuse()

    async def start_upload(self, key: str) -> Upload:
        raise self._refuse()

    async def delete(self, key: str) -> None:
        raise self._refuse()

    async def list(self, prefix: str) -> list[tuple[str, int]]:
        raise self._refuse()
