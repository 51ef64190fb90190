"""Changing a site's replicas live, inside the supervisor, without failing a request.

Scale-up: start the new model servers (recorded at once, so `serve stop` finds them, but not restarted by
the supervisor loop until they are in service), wait until each answers ready, put them in the gateway
config (a gateway restarted from now on has them), then add them to every running gateway through its
admin API (``POST /admin/backends``); each gateway sends them traffic once its first health check passes.

Scale-down (the highest-numbered replicas go; replica 1 always stays): take them out of the gateway
config, drain them on every running gateway (no new request goes there), wait until no gateway has a
request in flight to them, remove them from every gateway, then stop them with SIGTERM (a model server
keeps answering for its ``--drain-s`` after it, so even a retry chosen before the drain is served).

The helpers that talk to every gateway and stop servers are shared with the rolling update
(:mod:`.roller`); :class:`stratus.serving.worker.ControlWorker` runs both in the supervisor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from stratus.errors import ServingError
from stratus.processes import free_ports, stop_process
from stratus.serving.deployment import Deployment, GatewayProcess, SiteProcess, save_deployment
from stratus.serving.fleet import MAX_REPLICAS, Fleet
from stratus.serving.gateway_client import add_backend, admin_post, remove_backend, site_states

__all__ = ["IN_FLIGHT_TIMEOUT_S", "on_gateway", "save_record", "scale_site", "stop_servers", "wait_idle"]

log = logging.getLogger("stratus.serving")

# How long a scale-down waits for the requests in flight to a drained replica (a request has at most the
# gateway's upstream timeout, 10 s by default); past it the replica is stopped anyway, with SIGTERM, so
# its own drain still serves what arrives.
IN_FLIGHT_TIMEOUT_S = 30.0
# How long a gateway that does not answer its admin API (one being restarted) is retried.
_GATEWAY_RETRY_S = 5.0


def scale_site(fleet: Fleet, site: str, replicas: int) -> dict[str, Any]:
    """Set ``site``'s model servers to ``replicas``; the outcome as `serve scale --json` prints it.

    ServingError for a request that cannot be honoured (unknown site, a count out of range, a new server
    that does not start); ``notes`` name gateways that could not be told (they get it when restarted).
    """
    deployment = fleet.deployment
    if deployment is None or fleet.stopping:
        raise ServingError("the deployment is stopping", status=409)
    if site not in deployment.site_names:
        known = ", ".join(deployment.site_names)
        raise ServingError(f"unknown site {site!r}; this deployment serves from {known}", status=400)
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ServingError(f"--replicas must be from 1 to {MAX_REPLICAS}, not {replicas}", status=400)
    current = deployment.replicas(site)
    notes: list[str] = []
    added: list[SiteProcess] = []
    removed: list[SiteProcess] = []
    if replicas > len(current):
        added = _scale_up(fleet, deployment, site, current, replicas - len(current), notes)
    elif replicas < len(current):
        removed = _scale_down(fleet, deployment, current[replicas:], notes)
    return {
        "site": site,
        "before": len(current),
        "after": len(deployment.replicas(site)),
        "added": [{"name": s.name, "url": s.url, "pid": s.pid} for s in added],
        "removed": [server.name for server in removed],
        "notes": notes,
    }


def _scale_up(
    fleet: Fleet, deployment: Deployment, site: str, current: list[SiteProcess], count: int, notes: list[str]
) -> list[SiteProcess]:
    used = {server.replica for server in current}
    numbers = [n for n in range(1, MAX_REPLICAS + 1) if n not in used][:count]
    servers = [fleet.plan_server(site, n, port) for n, port in zip(numbers, free_ports(count), strict=True)]
    with fleet.lock:
        for server in servers:
            fleet.unsupervised.add(server.name)
            deployment.sites[server.name] = server
            fleet.launch(server)
        save_record(fleet, deployment)
    try:
        for server in servers:
            fleet.wait_server(server)
            if fleet.stopping:
                raise ServingError("the deployment is stopping", status=409)
    except BaseException:
        stop_servers(fleet, deployment, servers)
        raise
    with fleet.lock:
        fleet.unsupervised.difference_update(server.name for server in servers)
        fleet.write_gateway_config()
        save_record(fleet, deployment)
    for gateway in deployment.gateways:
        for server in servers:
            on_gateway(fleet, gateway, notes, f"add {server.name}", _adder(deployment, server))
    log.warning("site %s scaled up to %d replicas", site, len(deployment.replicas(site)))
    return servers


def _adder(deployment: Deployment, server: SiteProcess) -> Callable[[str], Any]:
    return lambda url: add_backend(url, deployment.admin_token, server.name, server.site, server.url)


def _scale_down(
    fleet: Fleet, deployment: Deployment, victims: list[SiteProcess], notes: list[str]
) -> list[SiteProcess]:
    token = deployment.admin_token
    with fleet.lock:
        fleet.unsupervised.update(server.name for server in victims)
        fleet.write_gateway_config()  # a gateway restarted from now on never routes to them
    try:
        told: list[GatewayProcess] = []
        for gateway in deployment.gateways:
            results = [
                on_gateway(fleet, gateway, notes, f"drain {server.name}", _drainer(token, server))
                for server in victims
            ]
            if all(results):
                told.append(gateway)
        wait_idle(told, token, [server.name for server in victims], notes)
        for gateway in deployment.gateways:
            for server in victims:
                remove = _remover(token, server)
                on_gateway(fleet, gateway, notes, f"remove {server.name}", remove)
    finally:
        stop_servers(fleet, deployment, victims)
    log.warning(
        "site %s scaled down to %d replicas", victims[0].site, len(deployment.replicas(victims[0].site))
    )
    return victims


def _drainer(token: str, server: SiteProcess) -> Callable[[str], Any]:
    return lambda url: admin_post(url, token, f"/admin/sites/{server.name}/drain")


def _remover(token: str, server: SiteProcess) -> Callable[[str], Any]:
    return lambda url: remove_backend(url, token, server.name)


def on_gateway(
    fleet: Fleet, gateway: GatewayProcess, notes: list[str], what: str, action: Callable[[str], Any]
) -> bool:
    """Run ``action`` on a running gateway, retried while it is (re)starting; False, with a note, if not."""
    deadline = time.monotonic() + _GATEWAY_RETRY_S
    while True:
        handle = fleet.handle(gateway)
        if handle is None or handle.poll() is not None:
            notes.append(f"{gateway.name} is not running: it reads the new backends when restarted")
            return False
        try:
            action(gateway.url)
            return True
        except ServingError as exc:
            if time.monotonic() >= deadline:
                notes.append(f"{gateway.name}: could not {what} ({exc.detail})")
                return False
        time.sleep(0.1)


def wait_idle(gateways: list[GatewayProcess], token: str, names: list[str], notes: list[str]) -> None:
    """Until no gateway in ``gateways`` has a request in flight to any backend in ``names``."""
    deadline = time.monotonic() + IN_FLIGHT_TIMEOUT_S
    pending = list(gateways)
    while pending and time.monotonic() < deadline:
        still = []
        for gateway in pending:
            try:
                records = site_states(gateway.url, token, 1.0)
            except ServingError:
                continue  # gone: nothing is in flight through it any more
            if any(int(records.get(name, {}).get("in_flight") or 0) for name in names):
                still.append(gateway)
        pending = still
        if pending:
            time.sleep(0.05)
    if pending:
        busy = ", ".join(gateway.name for gateway in pending)
        notes.append(f"requests were still in flight through {busy} after {IN_FLIGHT_TIMEOUT_S:g} s")


def stop_servers(fleet: Fleet, deployment: Deployment, servers: list[SiteProcess]) -> None:
    """Stop ``servers`` (SIGTERM, in parallel: each drains its --drain-s) and drop them from the record."""
    threads = [
        threading.Thread(
            target=stop_process,
            args=(server.pid, server.command, fleet.handle(server)),
            kwargs={"timeout_s": fleet.options.drain_s + 10.0},
        )
        for server in servers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with fleet.lock:
        for server in servers:
            deployment.sites.pop(server.name, None)
            fleet.unsupervised.discard(server.name)
            fleet.forget(server)
        save_record(fleet, deployment)


def save_record(fleet: Fleet, deployment: Deployment) -> None:
    """Rewrite the record, unless the fleet is stopping (its stop removes the record: keep it removed)."""
    with fleet.lock:
        if not fleet.stopping:
            save_deployment(deployment)
