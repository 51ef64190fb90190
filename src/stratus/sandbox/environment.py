"""The sandbox as a whole: three servers, their buckets, a platform file and a state file to find them again.

State lives in ``.stratus/sandbox/state.json`` beside the platform file it wrote, like the rest of a
project's ``.stratus/`` folder; data folders live beside it, so ``down`` then ``up`` keeps what was stored.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stratus.config.secret_fields import inline_allowed
from stratus.errors import ConfigError, ExecutorError, StorageError
from stratus.private_files import write_private
from stratus.redact import secrets_in_options
from stratus.sandbox.openbao import OpenBao, is_openbao_up, start_openbao, stop_openbao, write_secret
from stratus.sandbox.ray_cluster import RayCluster, cluster_up, start_ray_cluster, stop_ray_cluster
from stratus.sandbox.servers import (
    Server,
    ServerKind,
    create_bucket,
    is_up,
    load_servers,
    port_open,
    restart_server,
    save_servers,
    start_server,
    stop_server,
)
from stratus.state.location import STATE_DIRNAME, Layout

__all__ = [
    "SITES",
    "SandboxStatus",
    "sandbox_down",
    "sandbox_server_start",
    "sandbox_server_stop",
    "sandbox_status",
    "sandbox_up",
    "state_path",
]


@dataclass(frozen=True)
class _SiteSpec:
    server: ServerKind
    provider: str
    region: str
    bucket: str


#: The sites the sandbox's platform file declares: each cloud in the US and in the EU, so EU-resident data
#: has a target on every cloud (the DR drill dual-writes it to S3 and GCS and lands its feed on Azure).
#: Sites of one cloud share its server, each in a bucket of its own.
SITES: dict[str, _SiteSpec] = {
    "aws-us-east": _SiteSpec("s3", "aws", "us-east-1", "stratus-aws"),
    "aws-eu-central": _SiteSpec("s3", "aws", "eu-central-1", "stratus-aws-eu"),
    "gcp-eu-west": _SiteSpec("gcs", "gcp", "europe-west4", "stratus-gcp"),
    "azure-us-east": _SiteSpec("azure", "azure", "eastus", "stratus-azure"),
    "azure-eu-west": _SiteSpec("azure", "azure", "westeurope", "stratus-azure-eu"),
}
_HEADER = (
    "# Written by `stratus sandbox up`: sites whose storage is a local server on loopback (SeaweedFS for\n"
    "# S3, fake-gcs-server for GCS, Azurite for Azure Blob), each cloud with a US and an EU site; their\n"
    "# keys are kept in an OpenBao dev server on loopback and read by vault: reference (docs/secrets.md).\n"
    "# `stratus sandbox down` stops them; `stratus sandbox status` says which are up; `stratus sandbox\n"
    "# stop|start SERVER` takes one down and brings it back (same port and data) for outage drills.\n"
)


@dataclass(frozen=True)
class SandboxStatus:
    """Which sandbox servers (and Ray clusters, by site) run, where, and which platform file uses them."""

    platform: Path
    servers: dict[str, Server]
    up: dict[str, bool]
    ray: dict[str, RayCluster] = field(default_factory=dict)
    ray_up: dict[str, bool] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object."""
        return {
            "platform": str(self.platform),
            "servers": {
                name: {
                    "kind": s.kind,
                    "up": self.up[name],
                    "pid": s.pid,
                    "endpoint": s.endpoint,
                    "log": s.log,
                    "data_dir": s.data_dir,
                }
                for name, s in self.servers.items()
            },
            "openbao_up": self.up.get("openbao"),
            "ray": {
                site: {
                    "up": self.ray_up[site],
                    "address": cluster.address,
                    "nodes": [{"role": n.role, "pid": n.pid, "log": n.log} for n in cluster.nodes],
                }
                for site, cluster in self.ray.items()
            },
        }


def state_path(platform_out: Path) -> Path:
    """``.stratus/sandbox/state.json`` beside the platform file."""
    return Layout(platform_out).sandbox_dir / "state.json"


_TOKEN_NAME = "openbao-token"
#: Where the sandbox's Vault token is kept, relative to the platform file (owner-only): the written
#: platform file refers to it by this path.
TOKEN_FILE = f"{STATE_DIRNAME}/sandbox/{_TOKEN_NAME}"


def _platform_document(
    servers: dict[str, Server], bao: OpenBao | None, ray: dict[str, RayCluster]
) -> dict[str, Any]:
    """The sites; with ``bao``, every credential in their options is stored there and written as a
    ``vault:`` reference, and a ``secrets:`` section says where to read it."""
    sites: dict[str, Any] = {}
    for name, spec in SITES.items():
        server = servers[spec.server]
        options = server.options()
        if bao is not None:
            options = _by_reference(bao, spec.server, options)
        sites[name] = {
            "provider": spec.provider,
            "region": spec.region,
            "storage": server.url(spec.bucket, "stratus"),
            "storage_options": options,
        }
        if name in ray:
            sites[name]["compute"] = {"backend": "ray", "address": ray[name].address}
    document: dict[str, Any] = {"sites": sites}
    if bao is not None:
        document["secrets"] = {"vault": {"address": bao.address, "token_ref": f"file:{TOKEN_FILE}"}}
    return document


def _by_reference(bao: OpenBao, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with each top-level credential moved into OpenBao at ``secret/stratus/sandbox/KIND``."""
    secret = {k: v for k, v in options.items() if isinstance(v, str) and v in secrets_in_options({k: v})}
    secret = {k: v for k, v in secret.items() if v != "anon"}
    if not secret:
        return options
    write_secret(bao, f"stratus/sandbox/{kind}", secret)
    return {**options, **{k: f"vault:secret/stratus/sandbox/{kind}#{k}" for k in secret}}


def sandbox_status(platform_out: Path) -> SandboxStatus:
    """What the state file beside ``platform_out`` records, and whether each server is alive."""
    path = state_path(platform_out)
    if not path.exists():
        return SandboxStatus(platform_out, {}, {})
    servers, extra = load_servers(path)
    up = {name: is_up(s) for name, s in servers.items()}
    bao = _recorded_openbao(extra)
    if bao is not None:
        up["openbao"] = is_openbao_up(bao)
    ray = {site: RayCluster.from_json(data) for site, data in extra.get("ray", {}).items()}
    return SandboxStatus(platform_out, servers, up, ray, {site: cluster_up(c) for site, c in ray.items()})


def _recorded_openbao(extra: dict[str, Any]) -> OpenBao | None:
    record = extra.get("openbao")
    return OpenBao(**record) if isinstance(record, dict) else None


def _stop_recorded_openbao(platform_out: Path) -> None:
    path = state_path(platform_out)
    if path.exists():
        bao = _recorded_openbao(load_servers(path)[1])
        if bao is not None:
            stop_openbao(bao)


def sandbox_down(platform_out: Path) -> SandboxStatus:
    """Stop every recorded server by PID (data folders are kept); returns the status before stopping."""
    status = sandbox_status(platform_out)
    _stop_recorded_openbao(platform_out)
    for cluster in status.ray.values():
        stop_ray_cluster(cluster)  # by process group: never `ray stop`, which kills every Ray by name
    with ThreadPoolExecutor(max(1, len(status.servers))) as pool:  # SeaweedFS alone can take seconds
        list(pool.map(stop_server, status.servers.values()))
    state_path(platform_out).unlink(missing_ok=True)
    return status


def sandbox_up(
    platform_out: Path, *, timeout_s: float = 90.0, ray_sites: tuple[str, ...] = ()
) -> SandboxStatus:
    """Start the three servers (again, if some died), create the buckets, write the platform file.

    Each site in ``ray_sites`` also gets a local two-node Ray cluster of its own (a head and a worker
    node, see :mod:`.ray_cluster`) and ``compute: {backend: ray, address: ...}`` in the platform file.
    Already-running sandboxes are left alone: ``up`` twice is the same as once.
    """
    unknown = [site for site in ray_sites if site not in SITES]
    if unknown:
        raise ConfigError(
            f"no sandbox site {', '.join(unknown)}; the sandbox's sites are: {', '.join(SITES)}",
            field="--ray",
        )
    current = sandbox_status(platform_out)
    same_ray = set(current.ray) == set(ray_sites) and all(current.ray_up.values())
    if current.servers and all(current.up.values()) and same_ray and platform_out.exists():
        return current
    for server in current.servers.values():
        stop_server(server)  # a half-alive sandbox is restarted whole, so the platform file matches it
    for cluster in current.ray.values():
        stop_ray_cluster(cluster)
    _stop_recorded_openbao(platform_out)
    folder = state_path(platform_out).parent
    kinds: list[ServerKind] = ["s3", "gcs", "azure"]

    def start(kind: ServerKind) -> Server:
        server = start_server(kind, folder / kind, timeout_s=timeout_s)
        for spec in SITES.values():
            if spec.server == kind:
                create_bucket(server, spec.bucket)
        return server

    with ThreadPoolExecutor(len(kinds)) as pool:
        futures = {kind: pool.submit(start, kind) for kind in kinds}
    failures = {kind: f.exception() for kind, f in futures.items() if f.exception() is not None}
    servers: dict[str, Server] = {kind: f.result() for kind, f in futures.items() if f.exception() is None}
    if failures:
        for server in servers.values():
            stop_server(server)
        kind, exc = next(iter(failures.items()))
        raise StorageError(f"the sandbox could not start {kind}: {exc}")
    bao: OpenBao | None = None
    ray: dict[str, RayCluster] = {}
    try:
        extra: dict[str, Any] = {"platform": str(platform_out.resolve())}
        for site in ray_sites:
            ray[site] = start_ray_cluster(folder / "ray" / site)
        extra["ray"] = {s: c.to_json() for s, c in ray.items()}
        if not inline_allowed():  # keys go to OpenBao; the platform file holds vault: references
            bao = start_openbao(folder)
            extra["openbao"] = bao.to_json()
            token = Layout(platform_out).sandbox_dir / _TOKEN_NAME
            token.parent.mkdir(parents=True, exist_ok=True)
            write_private(token, bao.root_token.encode())
        save_servers(state_path(platform_out), servers, extra)
        platform_out.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only: with --allow-inline-secrets the S3 server's secret key is in storage_options.
        document = _HEADER + yaml.safe_dump(_platform_document(servers, bao, ray), sort_keys=False)
        write_private(platform_out, document.encode())
    except BaseException as exc:
        for server in servers.values():
            stop_server(server)
        if bao is not None:
            stop_openbao(bao)
        for cluster in ray.values():
            stop_ray_cluster(cluster)
        if isinstance(exc, ExecutorError):
            raise StorageError(f"the sandbox could not start a Ray cluster: {exc}") from exc
        raise
    up = dict.fromkeys(servers, True) | ({"openbao": True} if bao is not None else {})
    return SandboxStatus(platform_out, servers, up, ray, dict.fromkeys(ray, True))


def _recorded(platform_out: Path, name: str) -> tuple[Path, dict[str, Server], dict[str, Any]]:
    """The state file, its servers and other keys; ConfigError (exit 2) when ``name`` is not one of them."""
    path = state_path(platform_out)
    if not path.exists():
        raise ConfigError(
            f"no sandbox is recorded beside {platform_out} (no {path}); start one with "
            f"`stratus sandbox up --platform-out {platform_out}`",
            field="SERVER",
        )
    servers, extra = load_servers(path)
    if name not in servers:
        raise ConfigError(
            f"the sandbox beside {platform_out} has no server {name!r}; "
            f"expected one of: {', '.join(servers)}",
            field="SERVER",
        )
    return path, servers, extra


def sandbox_server_stop(platform_out: Path, name: str, *, timeout_s: float = 10.0) -> Server:
    """Kill one sandbox server by its recorded PID (SIGKILL: a crash, not a shutdown); its data is kept.

    Returns once its port refuses connections: a killed multi-threaded server can hold its listening
    socket for a moment after its PID is gone, and clients must see the outage the caller meant.
    """
    _path, servers, _extra = _recorded(platform_out, name)
    server = servers[name]
    stop_server(server, hard=True)
    deadline = time.monotonic() + timeout_s
    while port_open(server.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    return server


def sandbox_server_start(platform_out: Path, name: str, *, timeout_s: float = 90.0) -> Server:
    """Start a stopped sandbox server again: same command, port, credentials and data folder.

    The platform file stays valid (nothing it names changes); the new PID is recorded in the state file
    so that ``status`` and ``down`` keep finding it. A server already up is left alone.
    """
    path, servers, extra = _recorded(platform_out, name)
    server = servers[name]
    if not is_up(server):
        server = restart_server(server, timeout_s=timeout_s)
        for spec in SITES.values():
            if spec.server == server.kind:
                create_bucket(server, spec.bucket)  # exists already; proves the bucket takes writes again
        servers[name] = server
        save_servers(path, servers, extra)
    return server
