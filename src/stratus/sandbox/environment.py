"""The sandbox as a whole: three servers, their buckets, a platform file and a state file to find them again.

State lives in ``.stratus/sandbox/state.json`` beside the platform file it wrote, like the rest of a
project's ``.stratus/`` folder; data folders live beside it, so ``down`` then ``up`` keeps what was stored.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stratus.errors import ConfigError, ExecutorError, StorageError
from stratus.private_files import write_private
from stratus.sandbox.ray_cluster import RayCluster, cluster_up, start_ray_cluster, stop_ray_cluster
from stratus.sandbox.servers import (
    Server,
    ServerKind,
    create_bucket,
    is_up,
    load_servers,
    save_servers,
    start_server,
    stop_server,
)

__all__ = ["SITES", "SandboxStatus", "sandbox_down", "sandbox_status", "sandbox_up", "state_path"]


@dataclass(frozen=True)
class _SiteSpec:
    server: ServerKind
    provider: str
    region: str
    bucket: str


#: The sites the sandbox's platform file declares; gcp is in the EU so residency rules have a target.
SITES: dict[str, _SiteSpec] = {
    "aws-us-east": _SiteSpec("s3", "aws", "us-east-1", "stratus-aws"),
    "gcp-eu-west": _SiteSpec("gcs", "gcp", "europe-west4", "stratus-gcp"),
    "azure-us-east": _SiteSpec("azure", "azure", "eastus", "stratus-azure"),
}
_HEADER = (
    "# Written by `stratus sandbox up`: three sites whose storage is a local server on loopback\n"
    "# (SeaweedFS for S3, fake-gcs-server for GCS, Azurite for Azure Blob).\n"
    "# `stratus sandbox down` stops them; `stratus sandbox status` says which are up.\n"
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
    return platform_out.resolve().parent / ".stratus" / "sandbox" / "state.json"


def _platform_document(servers: dict[str, Server], ray: dict[str, RayCluster]) -> dict[str, Any]:
    sites: dict[str, Any] = {}
    for name, spec in SITES.items():
        server = servers[spec.server]
        sites[name] = {
            "provider": spec.provider,
            "region": spec.region,
            "storage": server.url(spec.bucket, "stratus"),
            "storage_options": server.options(),
        }
        if name in ray:
            sites[name]["compute"] = {"backend": "ray", "address": ray[name].address}
    return {"sites": sites}


def sandbox_status(platform_out: Path) -> SandboxStatus:
    """What the state file beside ``platform_out`` records, and whether each server is alive."""
    path = state_path(platform_out)
    if not path.exists():
        return SandboxStatus(platform_out, {}, {})
    servers, extra = load_servers(path)
    ray = {site: RayCluster.from_json(data) for site, data in extra.get("ray", {}).items()}
    return SandboxStatus(
        platform_out,
        servers,
        {name: is_up(s) for name, s in servers.items()},
        ray,
        {site: cluster_up(cluster) for site, cluster in ray.items()},
    )


def sandbox_down(platform_out: Path) -> SandboxStatus:
    """Stop every recorded server by PID (data folders are kept); returns the status before stopping."""
    status = sandbox_status(platform_out)
    with ThreadPoolExecutor(max(1, len(status.servers))) as pool:  # SeaweedFS alone can take seconds
        list(pool.map(stop_server, status.servers.values()))
    for cluster in status.ray.values():
        stop_ray_cluster(cluster)  # by process group: never `ray stop`, which kills every Ray by name
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
    ray: dict[str, RayCluster] = {}
    try:
        for site in ray_sites:
            ray[site] = start_ray_cluster(folder / "ray" / site)
        extra = {"platform": str(platform_out.resolve()), "ray": {s: c.to_json() for s, c in ray.items()}}
        save_servers(state_path(platform_out), servers, extra)
        platform_out.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only: the S3 server's secret key is in the sites' storage_options.
        document = _HEADER + yaml.safe_dump(_platform_document(servers, ray), sort_keys=False)
        write_private(platform_out, document.encode())
    except BaseException as exc:
        for server in servers.values():
            stop_server(server)
        for cluster in ray.values():
            stop_ray_cluster(cluster)
        if isinstance(exc, ExecutorError):
            raise StorageError(f"the sandbox could not start a Ray cluster: {exc}") from exc
        raise
    return SandboxStatus(platform_out, servers, dict.fromkeys(servers, True), ray, dict.fromkeys(ray, True))
