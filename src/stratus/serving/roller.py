"""A rolling update inside the supervisor: a new model version, site by site, behind a health gate.

For each site in turn: start the new version's model servers (as many as the site runs) beside the old
ones, wait until each answers ready, add them to every gateway and wait until every gateway's health
check passes them, then drain the old servers on every gateway (``/admin/backends/NAME/drain``: exactly
those backends), so the site's traffic goes to the new version only, and watch the new servers for
``watch_s`` seconds: the gateways' counts of requests and failed attempts to them, their health, and
that their processes live.

Rolled back (the old servers undrained, the new ones drained, removed and stopped, at this site and at
every site rolled before it) when a new server does not become ready, a gateway does not pass it, it
dies or turns unhealthy, or more than ``max_error_rate`` of the attempts sent to it fail. A client
never sees the difference: the old servers keep running, drained, until every site has passed; only
then are they drained of their last requests, removed from the gateways and stopped, every site's at
once (SIGTERM: they serve their ``--drain-s``). An attempt that fails on the new version is retried by
the gateway on another site, so even a failing new version costs no client request while other sites
serve.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratus.errors import ServingError
from stratus.processes import free_ports
from stratus.serving.deployment import Deployment, SiteProcess
from stratus.serving.fleet import MAX_REPLICAS, Fleet
from stratus.serving.gateway_client import add_backend, drain_backend, remove_backend, site_states
from stratus.serving.scaler import on_gateway, save_record, stop_servers, wait_idle

__all__ = ["DEFAULT_MAX_ERROR_RATE", "DEFAULT_WATCH_S", "RollPlan", "roll_sites"]

log = logging.getLogger("stratus.serving")

#: How long each site's new servers are watched after they take its traffic, by default.
DEFAULT_WATCH_S = 3.0
#: The share of attempts to the new version that may fail before the roll is undone, by default.
DEFAULT_MAX_ERROR_RATE = 0.05
# How long every gateway has to pass a new server's health check (one check every 0.25 s by default).
_GATEWAY_HEALTHY_S = 15.0
_POLL_S = 0.1


@dataclass(frozen=True)
class RollPlan:
    """What a roll request asks: the new version's file per site, in the order the sites roll."""

    sites: tuple[str, ...]
    paths: dict[str, Path]
    version: str | None
    source: str
    watch_s: float = DEFAULT_WATCH_S
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE

    def to_params(self) -> dict[str, Any]:
        """The JSON a ``roll`` request carries (:mod:`.control`)."""
        return {
            "sites": list(self.sites),
            "paths": {site: str(path) for site, path in self.paths.items()},
            "version": self.version,
            "source": self.source,
            "watch_s": self.watch_s,
            "max_error_rate": self.max_error_rate,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RollPlan:
        """Read a request back; ServingError (400) for one our CLI would not have written."""
        try:
            sites = tuple(str(site) for site in params["sites"])
            paths = {str(site): Path(path) for site, path in params["paths"].items()}
            version = None if params.get("version") is None else str(params["version"])
            plan = cls(
                sites,
                paths,
                version,
                str(params.get("source") or ""),
                float(params.get("watch_s", DEFAULT_WATCH_S)),
                float(params.get("max_error_rate", DEFAULT_MAX_ERROR_RATE)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ServingError(f"not a roll request ({exc})", status=400) from None
        missing = [site for site in sites if site not in paths]
        if not sites or missing:
            raise ServingError(
                f"the roll names no model file for {', '.join(missing) or 'any site'}", status=400
            )
        return plan


@dataclass
class _SiteRoll:
    """One site mid-roll: its old servers (drained once the new ones serve) and the new ones."""

    site: str
    old: list[SiteProcess]
    new: list[SiteProcess]


def roll_sites(fleet: Fleet, plan: RollPlan) -> dict[str, Any]:
    """Roll ``plan.sites`` to the new version one by one; the outcome as `models promote --json` shows it.

    ServingError naming the site and why when a gate fails; by then every site is back on the version
    it served before (the message says so).
    """
    deployment = fleet.deployment
    if deployment is None or fleet.stopping:
        raise ServingError("the deployment is stopping", status=409)
    unknown = [site for site in plan.sites if site not in deployment.site_names]
    if unknown:
        raise ServingError(
            f"the deployment does not serve from {', '.join(unknown)}; it serves from "
            f"{', '.join(deployment.site_names)}",
            status=400,
        )
    notes: list[str] = []
    done: list[_SiteRoll] = []
    watched: dict[str, dict[str, int]] = {}
    for site in plan.sites:
        try:
            roll = _shift(fleet, deployment, plan, site, notes, done)
            watched[site] = _watch(fleet, deployment, roll, plan)
        except ServingError as exc:
            for earlier in reversed(done):
                _revert(fleet, deployment, earlier, notes)
            back = ", ".join(dict.fromkeys([*(r.site for r in done), site]))
            log.warning("roll to %s failed at site %s and was rolled back: %s", plan.source, site, exc.detail)
            raise ServingError(
                f"site {site}: {exc.detail}. Rolled back: {back} serve the version they served before",
                status=exc.status,
            ) from None
    _retire(fleet, deployment, done, plan, notes)
    with fleet.lock:
        deployment.source = plan.source or deployment.source
        fleet.write_gateway_config()
        save_record(fleet, deployment)
    log.warning("rolled %s to %s", ", ".join(plan.sites), plan.source)
    return {
        "sites": [
            {
                "site": roll.site,
                "retired": [server.name for server in roll.old],
                "serving": [{"name": s.name, "url": s.url, "pid": s.pid} for s in roll.new],
                **watched[roll.site],
            }
            for roll in done
        ],
        "version": plan.version,
        "notes": notes,
    }


def _shift(
    fleet: Fleet, deployment: Deployment, plan: RollPlan, site: str, notes: list[str], done: list[_SiteRoll]
) -> _SiteRoll:
    """Start the new servers at ``site``, put them on every gateway, drain the old ones there."""
    old = deployment.replicas(site)
    used = {server.replica for server in deployment.replicas(site)}
    numbers = [n for n in range(1, 2 * MAX_REPLICAS + 1) if n not in used][: len(old)]
    path = plan.paths[site]
    new = [
        fleet.plan_server(site, n, port, model=(path, plan.version))
        for n, port in zip(numbers, free_ports(len(old)), strict=True)
    ]
    with fleet.lock:
        for server in new:
            fleet.unsupervised.add(server.name)  # the roll owns them until they are in service
            deployment.sites[server.name] = server
            fleet.launch(server)
        save_record(fleet, deployment)
    roll = _SiteRoll(site, old, new)
    try:
        for server in new:
            try:
                fleet.wait_server(server)
            except ServingError as exc:
                raise ServingError(f"the new version failed readiness: {exc.detail}", status=502) from None
            if fleet.stopping:
                raise ServingError("the deployment is stopping", status=409)
        token = deployment.admin_token
        for gateway in deployment.gateways:
            for server in new:
                add = _adder(token, server)
                on_gateway(fleet, gateway, notes, f"add {server.name}", add)
        _wait_healthy(deployment, [server.name for server in new])
        for gateway in deployment.gateways:
            for server in old:
                drain = _drainer(token, server.name, True)
                on_gateway(fleet, gateway, notes, f"drain {server.name}", drain)
    except BaseException:
        _revert(fleet, deployment, roll, notes)
        raise
    done.append(roll)
    log.warning("site %s: the new version serves (%s)", site, ", ".join(s.name for s in new))
    return roll


def _adder(token: str, server: SiteProcess) -> Callable[[str], Any]:
    return lambda url: add_backend(url, token, server.name, server.site, server.url)


def _drainer(token: str, name: str, drained: bool) -> Callable[[str], Any]:
    return lambda url: drain_backend(url, token, name, drained)


def _remover(token: str, name: str) -> Callable[[str], Any]:
    return lambda url: remove_backend(url, token, name)


def _wait_healthy(deployment: Deployment, names: list[str]) -> None:
    """Until every gateway has checked each of ``names`` and found it healthy (or drained by an operator)."""
    deadline = time.monotonic() + _GATEWAY_HEALTHY_S
    waiting = ""
    while time.monotonic() < deadline:
        waiting = ""
        for gateway in deployment.gateways:
            try:
                records = site_states(gateway.url, deployment.admin_token, 1.0)
            except ServingError:
                continue  # down: it reads the backends from its config when restarted
            for name in names:
                record = records.get(name, {})
                checked = record.get("last_check_age_s") is not None
                if not checked or record.get("state") not in ("healthy", "drained"):
                    waiting = f"{gateway.name} sees {name} {record.get('state', 'absent')}"
        if not waiting:
            return
        time.sleep(_POLL_S)
    raise ServingError(
        f"the gateways did not pass the new version's health checks within {_GATEWAY_HEALTHY_S:g} s "
        f"({waiting})",
        status=502,
    )


def _counts(deployment: Deployment, names: list[str]) -> tuple[int, int, str | None]:
    """(requests, failed attempts) the live gateways sent to ``names``, and the first sick one, if any."""
    requests = failures = 0
    for gateway in deployment.gateways:
        try:
            records = site_states(gateway.url, deployment.admin_token, 1.0)
        except ServingError:
            continue
        for name in names:
            record = records.get(name)
            if record is None:
                continue
            requests += int(record.get("requests") or 0)
            failures += int(record.get("failures") or 0)
            if record.get("state") in ("ejected", "unhealthy"):
                why = record.get("last_error") or record.get("last_check_error") or "failed checks"
                return requests, failures, f"{gateway.name} sees {name} {record['state']} ({why})"
    return requests, failures, None


def _watch(fleet: Fleet, deployment: Deployment, roll: _SiteRoll, plan: RollPlan) -> dict[str, int]:
    """Watch the site's new servers for ``plan.watch_s``; ServingError when they fail the gate."""
    names = [server.name for server in roll.new]
    base_requests, base_failures, _ = _counts(deployment, names)
    deadline = time.monotonic() + plan.watch_s
    requests = failures = 0
    while True:
        for server in roll.new:
            handle = fleet.handle(server)
            if handle is not None and handle.poll() is not None:
                raise ServingError(
                    f"the new version's server {server.name} exited with code {handle.returncode} while "
                    "it was watched",
                    status=502,
                )
        total_requests, total_failures, sick = _counts(deployment, names)
        requests, failures = total_requests - base_requests, total_failures - base_failures
        if sick is not None:
            raise ServingError(f"the new version turned unhealthy: {sick}", status=502)
        if failures and failures > plan.max_error_rate * max(requests, 1):
            raise ServingError(
                f"the new version's error rate rose to {failures}/{requests} attempts failed within "
                f"{plan.watch_s:g} s (more than {plan.max_error_rate:.0%})",
                status=502,
            )
        if time.monotonic() >= deadline:
            return {"watched_requests": requests, "watched_failures": failures}
        time.sleep(_POLL_S)


def _revert(fleet: Fleet, deployment: Deployment, roll: _SiteRoll, notes: list[str]) -> None:
    """Put the site back on its old servers and take the new ones out (what a failed gate does)."""
    token = deployment.admin_token
    for gateway in deployment.gateways:
        for server in roll.old:
            on_gateway(fleet, gateway, notes, f"undrain {server.name}", _drainer(token, server.name, False))
    started = [s for s in roll.new if fleet.handle(s) is not None]
    told = []
    for gateway in deployment.gateways:
        results = [
            on_gateway(fleet, gateway, notes, f"drain {s.name}", _drainer(token, s.name, True))
            for s in started
            if _present(gateway.url, token, s.name)
        ]
        if all(results):
            told.append(gateway)
    wait_idle(told, token, [s.name for s in roll.new], notes)
    for gateway in deployment.gateways:
        for server in started:
            if _present(gateway.url, token, server.name):
                on_gateway(fleet, gateway, notes, f"remove {server.name}", _remover(token, server.name))
    stop_servers(fleet, deployment, roll.new)
    log.warning("site %s rolled back to %s", roll.site, ", ".join(s.name for s in roll.old))


def _present(url: str, token: str, name: str) -> bool:
    """Whether the gateway at ``url`` has backend ``name`` (a dead gateway: no)."""
    try:
        return name in site_states(url, token, 1.0)
    except ServingError:
        return False


def _retire(
    fleet: Fleet, deployment: Deployment, rolls: list[_SiteRoll], plan: RollPlan, notes: list[str]
) -> None:
    """Every site passed: the old servers finish their requests, leave the gateways, and stop.

    All sites' old servers at once: each serves its ``--drain-s`` after SIGTERM, and stopping them site
    by site made a roll wait that long once per site.
    """
    token = deployment.admin_token
    old = [server for roll in rolls for server in roll.old]
    wait_idle(list(deployment.gateways), token, [s.name for s in old], notes)
    with fleet.lock:
        for roll in rolls:
            fleet.model_paths[roll.site] = plan.paths[roll.site]
            fleet.model_versions[roll.site] = plan.version
            # In service: restarted if they die.
            fleet.unsupervised.difference_update(s.name for s in roll.new)
        fleet.unsupervised.update(s.name for s in old)
        fleet.write_gateway_config()  # a gateway restarted from now on has only the new servers
    for gateway in deployment.gateways:
        for server in old:
            on_gateway(fleet, gateway, notes, f"remove {server.name}", _remover(token, server.name))
    stop_servers(fleet, deployment, old)
