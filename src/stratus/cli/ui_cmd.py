"""``stratus ui``: the read-only web dashboard of a platform, served until Ctrl-C.

A thin shell over :mod:`stratus.ui`, imported only when the command runs (Starlette, Jinja2 and uvicorn
are not paid for by any other command). It binds 127.0.0.1 unless told otherwise: the dashboard shows
run names, logs and costs, and has no login.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import typer

from stratus.cli.inputs import PLATFORM_HERE, workspace_here
from stratus.cli.output import console, stderr
from stratus.errors import ConfigError

__all__ = ["DEFAULT_PORT", "ui_command"]

DEFAULT_PORT = 8501


def ui_command(
    port: int = typer.Option(DEFAULT_PORT, "--port", min=0, max=65535, help="TCP port (0: any free port)."),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on. The dashboard has no login: anything but loopback exposes it.",
    ),
    platform: Path | None = PLATFORM_HERE,
    state_url: str | None = typer.Option(
        None,
        "--state-url",
        envvar="STRATUS_STATE_URL",
        help="State database URL (default: beside the platform).",
    ),
    probe_sites: bool = typer.Option(
        True, "--probe-sites/--no-probe-sites", help="Probe each site's store on the sites page."
    ),
) -> None:
    """Serve the dashboard: runs and their graphs, sites, cost, serving and models (read-only).

    Example: stratus ui --platform examples/fraud-detection/stratus.yaml --port 8501
    """
    from stratus.ui import Dashboard, create_app  # heavy: only this command needs it
    from stratus.ui.app import LOOPBACK_HOSTS

    workspace = workspace_here(platform, state_url)
    loopback = _is_loopback(host)
    dashboard = Dashboard.open(workspace)
    dashboard.probe_sites = probe_sites
    app = create_app(dashboard, allowed_hosts=LOOPBACK_HOSTS if loopback else ("*",))
    listener = _bind(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{listener.getsockname()[1]}"
    if not loopback:
        stderr().print(f"warning: listening on {host}: anyone who can reach it sees this platform's runs")
    shown = f"Stratus dashboard for {workspace.platform_file}: {url}  (Ctrl-C stops it)"
    console().print(shown, soft_wrap=True, markup=False)
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[listener])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a taken port is a clear error before anything is printed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host.strip("[]"), port))
    except OSError as exc:
        listener.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port", field="--port"
        ) from exc
    listener.listen(128)
    listener.set_inheritable(True)
    return listener
