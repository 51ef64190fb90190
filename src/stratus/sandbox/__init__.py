"""Local stand-ins for three clouds' object stores, as real servers on loopback.

``stratus sandbox up`` starts SeaweedFS (S3), fake-gcs-server (GCS) and Azurite (Azure Blob), creates a
bucket in each and writes a platform file whose aws/gcp/azure sites store to them; the test fixtures start
the same servers with the same code (:mod:`.servers`).

:mod:`.wan` (``python -m stratus.sandbox.wan``, root only) joins sites as network namespaces over a link
with a fixed delay, for what crosses a WAN (training across sites); it is imported on its own, not here,
so that running it as a module stays clean.
"""

from stratus.sandbox.environment import (
    SITES,
    SandboxStatus,
    sandbox_down,
    sandbox_server_start,
    sandbox_server_stop,
    sandbox_status,
    sandbox_up,
    state_path,
)
from stratus.sandbox.servers import (
    AZURITE_VERSION,
    Server,
    ServerKind,
    create_bucket,
    is_up,
    list_objects,
    load_servers,
    restart_server,
    save_servers,
    start_server,
    stop_server,
)

__all__ = [
    "AZURITE_VERSION",
    "SITES",
    "SandboxStatus",
    "Server",
    "ServerKind",
    "create_bucket",
    "is_up",
    "list_objects",
    "load_servers",
    "restart_server",
    "sandbox_down",
    "sandbox_server_start",
    "sandbox_server_stop",
    "sandbox_status",
    "sandbox_up",
    "save_servers",
    "start_server",
    "state_path",
    "stop_server",
]
