"""One site's object store goes down and comes back: the storage half of a whole-site outage drill.

On the sandbox a site's store is a real server process on loopback (SeaweedFS, fake-gcs-server,
Azurite), recorded by PID in ``.stratus/sandbox/state.json``. Taking it down is a SIGKILL of that PID,
as a crash would; bringing it back starts the same command again, on the same port with the same data
folder, and counts it back only once a real write succeeded; the state file is updated with the new PID
so `sandbox status` and `sandbox down` keep working. A site whose store is a folder (``file://``) has no
server to lose, and no honest way to make a folder "unreachable" exists, so it is refused.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratus.errors import ConfigError
from stratus.sandbox.environment import state_path
from stratus.sandbox.servers import (
    Server,
    is_up,
    list_objects,
    load_servers,
    restart_server,
    save_servers,
    stop_server,
)

__all__ = ["SandboxStore", "bring_back", "find_site_store", "refuses_connections", "take_down"]


@dataclass
class SandboxStore:
    """A site's store as a sandbox server: where it is recorded, and the bucket/prefix the site uses."""

    site: str
    state_file: Path
    name: str  # the server's key in the state file ("s3", "gcs", "azure")
    server: Server
    path: str  # bucket/prefix, as the server's filesystem names it

    def objects(self) -> dict[str, int]:
        """Every object the site holds on this server: key → size."""
        return list_objects(self.server, self.path)

    def to_json(self) -> dict[str, Any]:
        """For the drill's report (no credentials)."""
        return {"kind": self.server.kind, "endpoint": self.server.endpoint, "data_dir": self.server.data_dir}


def find_site_store(platform_file: Path, site: str, storage: str, options: Mapping[str, Any]) -> SandboxStore:
    """The sandbox server ``site`` stores to; ConfigError (exit 2) saying why when there is none to stop."""
    scheme, _, rest = storage.partition("://")
    if scheme == "file" or not rest:
        raise ConfigError(
            f"site {site} stores to {storage}, a local folder: there is no store server to stop, and "
            "hiding a folder would not be an outage. Drill a sandbox site (`stratus sandbox up`) for "
            "storage, or use --scope server",
            field="--scope",
        )
    state = state_path(platform_file)
    servers = load_servers(state)[0] if state.exists() else {}
    for name, server in servers.items():
        if _points_at(options, server.endpoint):
            return SandboxStore(site, state, name, server, rest.strip("/"))
    recorded = ", ".join(s.endpoint for s in servers.values()) or "none"
    raise ConfigError(
        f"site {site} stores to {storage}, which is not a server `stratus sandbox up` started (recorded in "
        f"{state}: {recorded}); chaos stops only sandbox servers, never a real cloud's store",
        field="--scope",
    )


def _points_at(options: Any, endpoint: str) -> bool:
    """True when any string in the storage options names ``endpoint`` (endpoint_url, BlobEndpoint=...)."""
    if isinstance(options, str):
        at = options.find(endpoint)
        end = at + len(endpoint)
        return at >= 0 and (end == len(options) or options[end] in "/;")
    if isinstance(options, Mapping):
        return any(_points_at(v, endpoint) for v in options.values())
    if isinstance(options, list | tuple):
        return any(_points_at(v, endpoint) for v in options)
    return False


def take_down(store: SandboxStore, timeout_s: float = 10.0) -> int:
    """SIGKILL the store's server (a crash, not a shutdown) and wait until its port refuses; its PID.

    A killed multi-threaded server's command line vanishes as soon as its main thread exits, while its
    other threads still hold the listening socket for a moment: the port, not the PID, says it is down.
    """
    pid = store.server.pid
    stop_server(store.server, hard=True)
    deadline = time.monotonic() + timeout_s
    while not refuses_connections(store) and time.monotonic() < deadline:
        time.sleep(0.02)
    return pid


def refuses_connections(store: SandboxStore) -> bool:
    """True when nothing accepts connections on the store's port: clients see it unreachable."""
    try:
        with socket.create_connection(("127.0.0.1", store.server.port), timeout=0.5):
            return False
    except OSError:
        return True


def bring_back(store: SandboxStore, timeout_s: float = 90.0) -> Server:
    """Start the same server again (same port, same data) and record its new PID in the state file."""
    if not is_up(store.server):
        restart_server(store.server, timeout_s=timeout_s)
    servers, extra = load_servers(store.state_file)
    servers[store.name] = store.server
    save_servers(store.state_file, servers, extra)
    return store.server
