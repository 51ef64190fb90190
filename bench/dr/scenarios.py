"""The three drills: a model server, a gateway, and a whole site (server + gateway + store) SIGKILLed.

Each drill starts fresh client threads (both kinds, see :mod:`bench.dr.load`), lets them warm up,
kills, follows the milestones from the kill until the deployment is whole again (every process up,
every gateway in DNS, every site in every gateway's rotation), lets the load run on for ``settle_s``
and stops it. The site killed is the second one and the gateway ``gateway-2`` (127.0.0.2): on the local
default every gateway routes to every site, so which gateway "belongs" to a site is the bench's choice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.dr.kill import kill_gateway, kill_server, kill_store, record
from bench.dr.load import ClientResult, Load
from bench.dr.watch import Milestone, Probe, timeline
from bench.dr.world import World
from stratus import sandbox

__all__ = ["SCENARIOS", "DrillResult", "Settings", "gateway_drill", "server_drill", "site_drill"]

GATEWAY = "gateway-2"
RECOVERED = "recovered"
BACK_IN_ROTATION = "site back in rotation"
BACK_IN_DNS = "gateway back in DNS"


@dataclass(frozen=True)
class Settings:
    """How hard and how long each drill runs (bounded by requests per thread and by time)."""

    threads: int = 4
    warmup_s: float = 2.0
    settle_s: float = 2.0
    timeout_s: float = 45.0
    max_requests: int = 20_000


@dataclass
class DrillResult:
    """One drill: what was killed, when each milestone came (s after the kill), what each client saw."""

    scenario: str
    killed: list[str]
    milestones: dict[str, float | None]
    clients: dict[str, ClientResult]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "scenario": self.scenario,
            "killed": self.killed,
            "milestones": self.milestones,
            "clients": {kind: result.to_json() for kind, result in self.clients.items()},
            "notes": self.notes,
        }


def _drill(
    world: World,
    settings: Settings,
    scenario: str,
    kill: Callable[[], list[str]],
    milestones: Sequence[Milestone],
) -> DrillResult:
    probe = Probe(world.serve_folder)
    port = record(world.serve_folder).gateway_port
    load = Load(
        probe.name, probe.dns_port, port, threads=settings.threads, max_requests=settings.max_requests
    )
    with load:
        time.sleep(settings.warmup_s)
        origin = time.monotonic()
        load.origin = origin
        killed = kill()
        seen = timeline(milestones, origin, RECOVERED, settings.timeout_s)
        time.sleep(settings.settle_s)
    notes = [] if seen[RECOVERED] is not None else [f"not whole again within {settings.timeout_s:.0f} s"]
    return DrillResult(scenario, killed, seen, {str(k): v for k, v in load.results.items()}, notes)


def _site(world: World) -> str:
    return list(record(world.serve_folder).sites)[-1]


def _server_milestones(probe: Probe, site: str, pid: int) -> list[Milestone]:
    return [
        Milestone("site ejected", lambda: probe.ejected(site)),
        Milestone("server restarted", lambda: probe.server_restarted(site, pid)),
        Milestone(BACK_IN_ROTATION, lambda: probe.in_rotation(site), after=("server restarted",)),
    ]


def _gateway_milestones(probe: Probe, host: str, pid: int) -> list[Milestone]:
    return [
        Milestone("gateway dropped from DNS", lambda: probe.dns_omits(host)),
        Milestone("gateway restarted", lambda: probe.gateway_restarted(GATEWAY, pid)),
        Milestone(
            BACK_IN_DNS,
            lambda: probe.dns_lists(host),
            after=("gateway restarted",),
        ),
    ]


def server_drill(world: World, settings: Settings) -> DrillResult:
    """SIGKILL one site's model server; the gateways eject it and the supervisor restarts it."""
    site = _site(world)
    pid = record(world.serve_folder).sites[site].pid
    probe = Probe(world.serve_folder)
    milestones = [
        *_server_milestones(probe, site, pid),
        Milestone(RECOVERED, probe.whole, after=(BACK_IN_ROTATION,)),
    ]

    def kill() -> list[str]:
        return [f"model server of {site} (pid {kill_server(world.serve_folder, site)})"]

    return _drill(world, settings, "server", kill, milestones)


def gateway_drill(world: World, settings: Settings) -> DrillResult:
    """SIGKILL one of the two gateways; DNS drops it, the supervisor restarts it, DNS lists it again."""
    gateway = next(g for g in record(world.serve_folder).gateways if g.name == GATEWAY)
    probe = Probe(world.serve_folder)
    milestones = [
        *_gateway_milestones(probe, gateway.host, gateway.pid),
        Milestone(RECOVERED, probe.whole, after=(BACK_IN_DNS,)),
    ]

    def kill() -> list[str]:
        return [f"{GATEWAY} on {gateway.host} (pid {kill_gateway(world.serve_folder, GATEWAY)})"]

    return _drill(world, settings, "gateway", kill, milestones)


def site_drill(world: World, settings: Settings) -> DrillResult:
    """SIGKILL a site's model server, a gateway and (sandbox) the site's object store at one instant."""
    deployment = record(world.serve_folder)
    site = _site(world)
    gateway = next(g for g in deployment.gateways if g.name == GATEWAY)
    probe = Probe(world.serve_folder)
    milestones = [
        *_server_milestones(probe, site, deployment.sites[site].pid),
        *_gateway_milestones(probe, gateway.host, gateway.pid),
        Milestone(RECOVERED, probe.whole, after=(BACK_IN_ROTATION, BACK_IN_DNS)),
    ]
    store = world.stores.get(site)

    def kill() -> list[str]:
        killed = [
            f"model server of {site} (pid {kill_server(world.serve_folder, site)})",
            f"{GATEWAY} on {gateway.host} (pid {kill_gateway(world.serve_folder, GATEWAY)})",
        ]
        if store is not None:
            killed.append(f"{store.kind} store of {site} (pid {kill_store(store)})")
        return killed

    result = _drill(world, settings, "site", kill, milestones)
    if store is None:
        result.notes.append("the site's store is a folder (no sandbox): it was not killed")
        return result
    down = not sandbox.is_up(store)
    started = time.monotonic()
    world.stores[site] = sandbox.restart_server(store)
    result.notes.append(
        f"the {store.kind} store was {'still down' if down else 'up (?)'} when the drill ended: nothing in "
        "serving restarts or reads it once the model is staged, so the server restarted from its staged "
        f"copy; the bench then restarted the store ({time.monotonic() - started:.1f} s to take writes)"
    )
    return result


SCENARIOS: dict[str, Callable[[World, Settings], DrillResult]] = {
    "server": server_drill,
    "gateway": gateway_drill,
    "site": site_drill,
}
