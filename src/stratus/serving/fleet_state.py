"""The truth about a deployment's processes, read from the record and /proc, not from the supervisor.

`serve status` must be right when the deployment is half dead (the supervisor killed but its servers
alive, a gateway gone), so it never asks the supervisor: it checks each recorded PID against the exact
command line it was started with, and asks each live gateway how it sees the sites.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from stratus.errors import ServingError
from stratus.processes import is_running
from stratus.serving.deployment import SUPERVISOR_MARKER, Deployment
from stratus.serving.gateway_client import site_states

__all__ = ["ProcessState", "fleet_state", "gateway_views", "process_states"]

Role = Literal["supervisor", "gateway", "server", "dns"]
FleetState = Literal["running", "starting", "degraded", "stopped"]


@dataclass(frozen=True)
class ProcessState:
    """One recorded process: what it is, where it listens, and whether it is alive (and still ours)."""

    role: Role
    name: str
    pid: int
    address: str | None
    running: bool
    restarts: int
    log: str | None

    def to_json(self) -> dict[str, Any]:
        """As `serve status --json` shows it (``state``: running or dead)."""
        return {**asdict(self), "state": "running" if self.running else "dead"}

    @property
    def label(self) -> str:
        """``gateway gateway-2 (pid 123)``: how messages name it."""
        return f"{self.role} {self.name} (pid {self.pid})"


def process_states(deployment: Deployment) -> list[ProcessState]:
    """Every process the deployment's supervisor started, and the supervisor itself, in stop order."""
    supervisor_ours = deployment.supervisor_command or SUPERVISOR_MARKER
    states = [
        ProcessState(
            "supervisor",
            "supervisor",
            deployment.supervisor_pid,
            None,
            is_running(deployment.supervisor_pid, supervisor_ours),
            0,
            None,
        )
    ]
    if deployment.dns is not None:
        dns = deployment.dns
        states.append(
            ProcessState(
                "dns", dns.name, dns.pid, dns.address, is_running(dns.pid, dns.command), dns.restarts, dns.log
            )
        )
    for gateway in deployment.gateways:
        running = is_running(gateway.pid, gateway.command)
        states.append(
            ProcessState(
                "gateway", gateway.name, gateway.pid, gateway.url, running, gateway.restarts, gateway.log
            )
        )
    for site in deployment.sites.values():
        running = is_running(site.pid, site.command)
        states.append(ProcessState("server", site.name, site.pid, site.url, running, site.restarts, site.log))
    return states


def fleet_state(deployment: Deployment, states: list[ProcessState]) -> FleetState:
    """``running`` (every process up), ``starting``, ``degraded`` (some up, some not) or ``stopped``."""
    up = [state.running for state in states]
    if all(up):
        return "running" if deployment.ready else "starting"
    return "degraded" if any(up) else "stopped"


def gateway_views(
    deployment: Deployment, states: list[ProcessState], timeout_s: float = 1.0
) -> dict[str, dict[str, dict[str, Any]] | str]:
    """Gateway name → its site records from the admin API, or why it could not say (dead, not answering)."""
    alive = {state.name for state in states if state.role == "gateway" and state.running}
    views: dict[str, dict[str, dict[str, Any]] | str] = {}
    for gateway in deployment.gateways:
        if gateway.name not in alive:
            views[gateway.name] = "not running"
            continue
        try:
            views[gateway.name] = site_states(gateway.url, deployment.admin_token, timeout_s)
        except ServingError as exc:
            views[gateway.name] = f"not answering ({exc.detail})"
    return views
