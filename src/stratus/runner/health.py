"""Sites that are down for this run: found by a short store probe at plan time, or by a step failing.

A down site is down for the whole run, not just for the step that found out: the planner places nothing
more there, and its store is replaced by one that refuses at once, so no later copy, lookup or replica
write waits out an SDK's timeouts and retries against it. The plan is re-solved around it with the same
cost model, residency and policy as the first plan; when nothing compliant is left the run fails with
the planner's reasons. Steps already finished there keep their place (their outputs may have replicas
elsewhere).

:func:`probe_store` is the one place that asks a store whether it answers; it is shaped like
``stratus.storage.health.probe`` underneath, the same probe `storage verify` and quorum writes use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from stratus.errors import ConfigError, StorageError
from stratus.executors import SupportsProbe
from stratus.planner import Plan
from stratus.runner.context import RunContext
from stratus.runner.events import RunEvent
from stratus.runner.incidents import Moved
from stratus.storage import DEFAULT_PROBE_TIMEOUT_S, SiteStore, probe, probe_all
from stratus.storage.backend import Backend, Upload

__all__ = [
    "DEFAULT_PROBE_TIMEOUT_S",
    "SiteDownError",
    "announce_replan",
    "check_compute",
    "mark_down",
    "plan_sites",
    "plan_with_healthy_sites",
    "probe_store",
    "probe_timeout_s",
]

PROBE_TIMEOUT_ENV = "STRATUS_PROBE_TIMEOUT_S"


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
    """None when the store answers within ``timeout_s`` (:func:`stratus.storage.health.probe`); else why."""
    health = probe(store, timeout_s)
    return None if health.reachable else f"its store {store.url} is unreachable: {health.detail}"


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
            check_compute(ctx, plan, timeout)
            return plan
        probed.update(fresh)
        down = {site: why for site, why in _probe_all(ctx, fresh, timeout).items() if why is not None}
        if not down:
            check_compute(ctx, plan, timeout)
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


def check_compute(ctx: RunContext, plan: Plan, timeout_s: float) -> None:
    """Raise ConfigError (exit 2) when a site the plan runs steps at has compute that does not answer.

    Only executors with an address (a Ray cluster's Jobs API) are probed, all at once. Unlike a silent
    store, which may come back and whose data may have replicas elsewhere, a compute address that does
    not answer before anything ran is most often a wrong ``compute.address`` or a cluster not started:
    the user is told which site and address, rather than having the run quietly placed elsewhere.
    """
    steps_at = [p.site for p in plan.placements] + [q.site for p in plan.placements for q in p.participants]
    probes = {
        site: executor
        for site in dict.fromkeys(steps_at)
        if isinstance(executor := ctx.sites.executors.get(site), SupportsProbe)
    }
    if not probes:
        return
    with ThreadPoolExecutor(len(probes)) as pool:
        answers = dict(zip(probes, pool.map(lambda e: e.probe(timeout_s), probes.values()), strict=True))
    for site, why in answers.items():
        if why is not None:
            raise ConfigError(
                f"site {site} is needed by this plan, but {why}; start the cluster "
                "(`stratus sandbox up --ray` for a local one) or correct the address",
                field=f"sites.{site}.compute.address",
            )


def mark_down(ctx: RunContext, site: str, why: str) -> bool:
    """Mark ``site`` down for the rest of the run; False when it already was.

    The planner drops it for every step, and its store is swapped (in the dict the data plane shares)
    for one that refuses at once, naming the site and the reason.
    """
    if not ctx.incidents.site_down(site, why):
        return False
    ctx.placer.mark_down(site, why)
    try:
        store: SiteStore | None = ctx.sites.stores[site]
    except (KeyError, StorageError):
        store = None  # never opened, or cannot be: every use already fails naming the site
    if store is not None:
        ctx.sites.stores.put(
            site, SiteStore(store.site, store.url, _Refusing(why), store.root, store.jurisdiction)
        )
    return True


def _probe_all(ctx: RunContext, sites: Iterable[str], timeout_s: float) -> dict[str, str | None]:
    """Every named site's answer to one probe, all at once; a store that cannot even be opened is down."""
    stores: list[SiteStore] = []
    answers: dict[str, str | None] = {}
    for site in sites:
        if site not in ctx.sites.stores:
            continue
        try:
            stores.append(ctx.sites.stores[site])
        except StorageError as exc:
            answers[site] = f"its store cannot be opened: {exc.detail}"
    for site, health in probe_all(stores, timeout_s).items():
        answers[site] = (
            None
            if health.reachable
            else f"its store {ctx.sites.stores[site].url} is unreachable: {health.detail}"
        )
    return answers


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
