"""What the drill can take down in a deployment: the one place that reads process records for `chaos`.

Supervised gateways ``gateway-1..N`` listen on ``127.0.0.i``, each with its own record; every read of the
record the drill needs goes through the few functions here. Gateways are not per-site: each routes to every
site. A site's gateway is therefore one the record ties to the site (a ``site`` field on a gateway record),
or one the user names with ``--gateway``; otherwise a whole-site drill takes down no gateway and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stratus.errors import ConfigError
from stratus.processes import is_running
from stratus.serving.deployment import GATEWAY_MARKER, SERVER_MARKER, Deployment
from stratus.serving.holds import gateway_key, server_key

__all__ = ["Target", "gateway_targets", "gateway_urls", "server_target", "site_gateways"]


@dataclass(frozen=True)
class Target:
    """One process the drill signals: what it is, its PID, how to tell it is still ours, its hold key."""

    role: str  # "server" or "gateway"
    name: str  # the site, or the gateway's name
    pid: int
    marker: str  # what its command line contains while the PID is still ours
    hold_key: str
    url: str

    def alive(self) -> bool:
        """True while the recorded PID is alive and still this process."""
        return is_running(self.pid, self.marker)

    def to_json(self) -> dict[str, Any]:
        """For the report: what was killed, with its PID."""
        return {"role": self.role, "name": self.name, "pid": self.pid, "url": self.url}


def server_target(deployment: Deployment, site: str) -> Target:
    """The site's model server as recorded now."""
    record = deployment.sites[site]
    return Target("server", site, record.pid, SERVER_MARKER, server_key(site), record.url)


def gateway_targets(deployment: Deployment) -> list[Target]:
    """Every gateway in the record, in order (``gateway-1`` first)."""
    return [
        Target("gateway", g.name, g.pid, GATEWAY_MARKER, gateway_key(g.name), g.url)
        for g in deployment.gateways
    ]


def gateway_urls(deployment: Deployment) -> list[str]:
    """Every gateway's endpoint: the load fails over between them as a re-resolving client would."""
    return [target.url for target in gateway_targets(deployment)]


def site_gateways(deployment: Deployment, site: str, named: list[str]) -> list[Target]:
    """The gateways a whole-site drill takes down with ``site``: those named, else those tied to it.

    A name that is not a gateway of the deployment is a user mistake naming the ones that exist.
    """
    gateways = gateway_targets(deployment)
    if named:
        by_name = {g.name: g for g in gateways}
        unknown = [n for n in named if n not in by_name]
        if unknown:
            raise ConfigError(
                f"no gateway {', '.join(map(repr, unknown))} in this deployment; its gateways are "
                f"{', '.join(by_name)}",
                field="--gateway",
            )
        return [by_name[n] for n in named]
    return [g for g in gateways if _tied_site(deployment, g.name) == site]


def _tied_site(deployment: Deployment, gateway: str) -> str | None:
    """The site a gateway record names, if the record has such a field (it does not today)."""
    for record in getattr(deployment, "gateways", []) or []:
        if getattr(record, "name", None) == gateway:
            site = getattr(record, "site", None)
            return site if isinstance(site, str) else None
    return None
