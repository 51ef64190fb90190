"""The record of a running deployment: one file that `serve status`, `serve stop` and `chaos` read.

The supervisor (the `stratus serve` process) rewrites it whenever something changes (a process
restarted); other commands only read it. It names every process the supervisor started (servers,
gateways, the DNS responder, the supervisor itself) with its PID and the exact command line, so that
`serve status` and `serve stop` can tell a live process of ours from a reused PID even after the
supervisor is gone. It holds the gateways' admin token, so it is written owner-only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stratus.errors import ServingError
from stratus.private_files import private_dir, write_private

__all__ = [
    "REPLICA_SEPARATOR",
    "Deployment",
    "DnsProcess",
    "GatewayProcess",
    "SiteProcess",
    "backend_name",
    "deployment_file",
    "load_deployment",
    "remove_deployment",
    "save_deployment",
]

SERVER_MARKER = "stratus.serving.server"
GATEWAY_MARKER = "stratus.serving.gateway"
DNS_MARKER = "stratus.serving.dns"
SUPERVISOR_MARKER = "serve"
# Replica i > 1 of site S is the backend ``S~i`` (replica 1 keeps the site's own name, so a deployment of
# one replica per site looks as it always did). ``~`` is in no site name a gateway accepts, so a backend
# name never reads as another site's.
REPLICA_SEPARATOR = "~"


def backend_name(site: str, replica: int) -> str:
    """The gateway backend (and supervisor key) name of one replica of a site's model server."""
    return site if replica == 1 else f"{site}{REPLICA_SEPARATOR}{replica}"


@dataclass
class SiteProcess:
    """One model server of a site (one replica): where it listens, its process, how to start it again."""

    site: str
    port: int
    pid: int
    log: str
    command: list[str]
    model_path: str
    cost_per_hour: float
    restarts: int = 0
    grpc_port: int | None = None  # the server's gRPC listener, when the deployment serves gRPC
    replica: int = 1
    # The offering cost_per_hour is the price of, and its vCPUs: what a "$/h" column must name.
    offering: str | None = None
    vcpus: float | None = None
    model_version: str | None = None  # the registered version it serves (its answers' model_version)

    @property
    def name(self) -> str:
        """Its backend name: the site for replica 1, ``SITE~i`` for replica i (the record's key)."""
        return backend_name(self.site, self.replica)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def machine(self) -> str:
        """``m6i.xlarge (4 vCPU)``: the offering ``cost_per_hour`` prices; ``-`` when none was priced."""
        if self.offering is None:
            return "-"
        return f"{self.offering} ({self.vcpus:g} vCPU)" if self.vcpus is not None else self.offering


@dataclass
class _Listener:
    """A supervised process at a fixed address: restarted there, so clients and DNS records stay right."""

    name: str
    host: str
    port: int
    pid: int
    log: str
    command: list[str]
    restarts: int = 0


@dataclass
class GatewayProcess(_Listener):
    """One of the deployment's gateways (all route to every site)."""

    @property
    def url(self) -> str:
        """The gateway's base URL."""
        return f"http://{self.host}:{self.port}"


@dataclass
class DnsProcess(_Listener):
    """The health-checked DNS responder that answers ``name`` with the live gateways' addresses."""

    @property
    def address(self) -> str:
        """Where it answers, UDP and TCP."""
        return f"{self.host}:{self.port}"


@dataclass
class Deployment:
    """A model served from several sites behind one or more gateways.

    ``sites`` maps each model server's backend name (``SITE`` for a site's first replica, ``SITE~i`` for
    the others) to its record; :attr:`site_names` and :meth:`replicas` give the per-site view. ``name``
    is the deployment's name (its folder under ``.stratus/serve/``); records written before deployments
    had names have none, and go by their model's.
    """

    model: str
    source: str
    policy: str
    folder: str
    gateway_port: int
    admin_token: str
    supervisor_pid: int
    supervisor_command: list[str] = field(default_factory=list)
    gateways: list[GatewayProcess] = field(default_factory=list)
    sites: dict[str, SiteProcess] = field(default_factory=dict)
    dns: DnsProcess | None = None
    ready: bool = False
    started_at: str = ""
    grpc_port: int | None = None  # every gateway's gRPC port (on its own host), when served
    name: str = ""

    @property
    def deployment_name(self) -> str:
        """What ``--name`` selects it by: its name, else (an older record) its model's."""
        return self.name or self.model

    @property
    def site_names(self) -> list[str]:
        """The sites it serves from, in the order they were given (each once, however many replicas)."""
        return list(dict.fromkeys(server.site for server in self.sites.values()))

    def replicas(self, site: str) -> list[SiteProcess]:
        """The model servers of ``site``, replica 1 first."""
        return sorted((s for s in self.sites.values() if s.site == site), key=lambda s: s.replica)

    @property
    def gateway_url(self) -> str:
        """The first gateway's endpoint (every gateway serves the same routes)."""
        return self.gateways[0].url if self.gateways else f"http://127.0.0.1:{self.gateway_port}"

    @property
    def gateway_urls(self) -> list[str]:
        """Every gateway's endpoint: what a client may fail over between, or a DNS name resolves to."""
        return [gateway.url for gateway in self.gateways]

    def to_json(self, *, with_token: bool = False) -> dict[str, Any]:
        """The record as JSON; the admin token only when asked (never in `serve status --json`)."""
        payload = asdict(self)
        payload["gateway_url"] = self.gateway_url
        payload["gateway_urls"] = self.gateway_urls
        if not with_token:
            payload.pop("admin_token")
        for name, site in self.sites.items():
            payload["sites"][name]["url"] = site.url
        for record, gateway in zip(payload["gateways"], self.gateways, strict=True):
            record["url"] = gateway.url
        payload["replicas"] = {site: len(self.replicas(site)) for site in self.site_names}
        return payload


def deployment_file(folder: Path) -> Path:
    """Where a platform's deployment record lives (its serving folder under the state folder)."""
    return folder / "deployment.json"


def save_deployment(deployment: Deployment) -> None:
    """Write the record atomically, readable by its owner only."""
    path = deployment_file(Path(deployment.folder))
    private_dir(path.parent)
    write_private(path, json.dumps(deployment.to_json(with_token=True), indent=2).encode())


def remove_deployment(folder: Path) -> None:
    """Forget the deployment (once every process it names is gone)."""
    deployment_file(folder).unlink(missing_ok=True)


def load_deployment(folder: Path) -> Deployment | None:
    """The recorded deployment, or None when there is none; ServingError for a record it cannot read."""
    path = deployment_file(folder)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ServingError(f"{path}: cannot read the deployment record ({exc})", status=500) from None
    try:
        return _from_json(payload)
    except (KeyError, TypeError) as exc:
        raise ServingError(
            f"{path}: not a deployment record this version of Stratus reads ({exc}); stop its processes "
            "by their PIDs in the file, then delete it",
            status=500,
        ) from None


def _from_json(payload: dict[str, Any]) -> Deployment:
    for derived in ("gateway_url", "gateway_urls", "replicas"):
        payload.pop(derived, None)
    sites = {}
    for name, record in payload.pop("sites").items():
        record.pop("url", None)
        sites[name] = SiteProcess(**record)
    gateways = []
    for record in payload.pop("gateways"):
        record.pop("url", None)
        gateways.append(GatewayProcess(**record))
    dns = payload.pop("dns", None)
    return Deployment(
        **payload, sites=sites, gateways=gateways, dns=None if dns is None else DnsProcess(**dns)
    )
