"""The record of a running deployment: one file that `serve status`, `serve stop` and `chaos` read.

The supervisor (the `stratus serve` process) rewrites it whenever something changes (a site restarted);
other commands only read it. It holds the gateway's admin token, so it is written owner-only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stratus.private_files import private_dir, write_private

__all__ = ["Deployment", "SiteProcess", "deployment_file", "load_deployment", "save_deployment"]

SERVER_MARKER = "stratus.serving.server"
GATEWAY_MARKER = "stratus.serving.gateway"
SUPERVISOR_MARKER = "serve"


@dataclass
class SiteProcess:
    """One site's model server: where it listens, its process, and how to start it again."""

    site: str
    port: int
    pid: int
    log: str
    command: list[str]
    model_path: str
    cost_per_hour: float
    restarts: int = 0

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Deployment:
    """A model served from several sites behind one gateway."""

    model: str
    source: str
    policy: str
    folder: str
    gateway_port: int
    gateway_pid: int
    gateway_log: str
    admin_token: str
    supervisor_pid: int
    sites: dict[str, SiteProcess] = field(default_factory=dict)
    ready: bool = False
    started_at: str = ""

    @property
    def gateway_url(self) -> str:
        """The one endpoint clients call."""
        return f"http://127.0.0.1:{self.gateway_port}"

    def to_json(self, *, with_token: bool = False) -> dict[str, Any]:
        """The record as JSON; the admin token only when asked (never in `serve status --json`)."""
        payload = asdict(self)
        payload["gateway_url"] = self.gateway_url
        if not with_token:
            payload.pop("admin_token")
        for name, site in self.sites.items():
            payload["sites"][name]["url"] = site.url
        return payload


def deployment_file(folder: Path) -> Path:
    """Where a platform's deployment record lives (its serving folder under the state folder)."""
    return folder / "deployment.json"


def save_deployment(deployment: Deployment) -> None:
    """Write the record atomically, readable by its owner only."""
    path = deployment_file(Path(deployment.folder))
    private_dir(path.parent)
    write_private(path, json.dumps(deployment.to_json(with_token=True), indent=2).encode())


def load_deployment(folder: Path) -> Deployment | None:
    """The recorded deployment, or None when there is none."""
    path = deployment_file(folder)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    payload.pop("gateway_url", None)
    sites = {}
    for name, record in payload.pop("sites").items():
        record.pop("url", None)
        sites[name] = SiteProcess(**record)
    return Deployment(**payload, sites=sites)
