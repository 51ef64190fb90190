"""``stratus sandbox``: S3, GCS and Azure object stores on loopback, and a platform file that uses them.

A thin shell over :mod:`stratus.sandbox`: it parses options and prints a table or one JSON object.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from stratus.cli.output import console, print_json
from stratus.sandbox import (
    SandboxStatus,
    sandbox_down,
    sandbox_server_start,
    sandbox_server_stop,
    sandbox_status,
    sandbox_up,
)

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Run real object-store servers on loopback (SeaweedFS for S3, fake-gcs-server for GCS, Azurite "
        "for Azure Blob) and write a platform file whose sites store to them; stop and start one of them "
        "for an outage drill. Example: stratus sandbox up --platform-out sandbox.yaml"
    ),
    no_args_is_help=True,
)

_PLATFORM = typer.Option(
    Path("stratus.sandbox.yaml"),
    "--platform-out",
    help="Platform file to write (up) or whose sandbox to use; state goes to .stratus/sandbox/ beside it. "
    "Example: --platform-out sandbox.yaml",
)
_SERVER = typer.Argument(..., help="The server's name in `stratus sandbox status`: s3, gcs or azure.")
_JSON = typer.Option(False, "--json", help="Print one JSON object instead of a table. Example: --json")
_RAY = typer.Option(
    None,
    "--ray",
    help="Also start a local two-node Ray cluster for this site (repeatable) and make it the site's "
    "compute (backend: ray); stopped by PID with `down`. Needs stratus[ray]. Example: --ray aws-us-east",
)


def _show(status: SandboxStatus, title: str) -> None:
    out = console()
    if not status.servers:
        out.print(f"no sandbox recorded beside {status.platform}")
        return
    table = Table("server", "kind", "state", "pid", "endpoint", "log", title=title)
    for name, server in status.servers.items():
        state = "[green]up[/]" if status.up[name] else "[red]down[/]"
        table.add_row(name, server.kind, state, str(server.pid), server.endpoint, server.log)
    for site, cluster in status.ray.items():
        state = "[green]up[/]" if status.ray_up[site] else "[red]down[/]"
        pids = ",".join(str(n.pid) for n in cluster.nodes)
        logs = ", ".join(n.log for n in cluster.nodes)
        table.add_row(f"ray:{site}", f"ray x{len(cluster.nodes)}", state, pids, cluster.address, logs)
    out.print(table)


@app.command("up")
def up_command(platform_out: Path = _PLATFORM, as_json: bool = _JSON, ray: list[str] | None = _RAY) -> None:
    """Start the servers (if not running), create the buckets, and write the platform file.

    Example: stratus sandbox up --platform-out sandbox.yaml --ray aws-us-east
    """
    status = sandbox_up(platform_out, ray_sites=tuple(ray or ()))
    if as_json:
        print_json(status.to_json())
        return
    _show(status, f"sandbox up; platform file: {platform_out}")


@app.command("down")
def down_command(platform_out: Path = _PLATFORM, as_json: bool = _JSON) -> None:
    """Stop the sandbox's servers by PID; their data folders are kept for the next `up`.

    Example: stratus sandbox down --platform-out sandbox.yaml
    """
    before = sandbox_down(platform_out)
    stopped = [name for name, alive in before.up.items() if alive]
    stopped += [f"ray:{site}" for site, alive in before.ray_up.items() if alive]
    if as_json:
        print_json({"platform": str(platform_out), "stopped": stopped})
        return
    console().print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command("status")
def status_command(platform_out: Path = _PLATFORM, as_json: bool = _JSON) -> None:
    """Say which sandbox servers are up, with their PIDs, endpoints and logs.

    Example: stratus sandbox status --json
    """
    status = sandbox_status(platform_out)
    if as_json:
        print_json(status.to_json())
        return
    _show(status, f"sandbox for {platform_out}")


@app.command("stop")
def stop_command(server: str = _SERVER, platform_out: Path = _PLATFORM, as_json: bool = _JSON) -> None:
    """Kill one server by its PID, as a crash would (for outage drills); its port and data are kept.

    Example: stratus sandbox stop s3 --platform-out sandbox.yaml
    """
    stopped = sandbox_server_stop(platform_out, server)
    if as_json:
        print_json({"platform": str(platform_out), "stopped": server, "pid": stopped.pid})
        return
    console().print(
        f"stopped {server} (pid {stopped.pid}); {stopped.endpoint} refuses connections until "
        f"`stratus sandbox start {server}`"
    )


@app.command("start")
def start_command(server: str = _SERVER, platform_out: Path = _PLATFORM, as_json: bool = _JSON) -> None:
    """Start a stopped server again on the same port with the same data, so the platform file still holds.

    Example: stratus sandbox start s3 --platform-out sandbox.yaml
    """
    started = sandbox_server_start(platform_out, server)
    if as_json:
        print_json({"platform": str(platform_out), "started": server, "pid": started.pid})
        return
    console().print(f"{server} is up (pid {started.pid}) at {started.endpoint}, with the data it held")
