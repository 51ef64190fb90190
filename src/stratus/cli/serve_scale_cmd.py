"""``stratus serve ls`` (every deployment of the platform) and ``stratus serve scale`` (replicas, live).

``ls`` reads the records and /proc only, like ``serve status``. ``scale`` hands the change to the
deployment's supervisor (:mod:`stratus.serving.control`), which owns the model servers, and waits
for its answer: the CLI never starts or stops a server itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from stratus.cli.inputs import JSON, PLATFORM_HERE, workspace_here
from stratus.cli.output import console, print_json, stderr
from stratus.errors import ConfigError, ServingError
from stratus.processes import is_running
from stratus.serving.control import submit, wait_answer
from stratus.serving.deployment import SUPERVISOR_MARKER, Deployment
from stratus.serving.deployments import list_deployments, require_deployment
from stratus.serving.fleet import MAX_REPLICAS
from stratus.serving.fleet_state import fleet_state, process_states

__all__ = ["ls_command", "scale_command"]


def ls_command(platform: Path | None = PLATFORM_HERE, as_json: bool = JSON) -> None:
    """Every deployment of this platform: name, model, sites and their replicas, gateways, port, state."""
    listed = list_deployments(workspace_here(platform).serve_dir)
    rows = [_summary(item.deployment) for item in listed]
    if as_json:
        print_json({"deployments": rows})
        return
    if not rows:
        stderr().print("no deployment here: start one with `stratus serve MODEL --sites A,B`")
        return
    table = Table("name", "model", "state", "sites (replicas)", "gateways", "port", "policy", "since")
    for row in rows:
        table.add_row(
            escape(row["name"]),
            escape(row["model"]),
            row["state"],
            ", ".join(f"{site} ({count})" for site, count in row["replicas"].items()),
            ", ".join(row["gateway_urls"]),
            str(row["gateway_port"]),
            row["policy"],
            row["started_at"],
        )
    console().print(table)


def _summary(deployment: Deployment) -> dict[str, Any]:
    states = process_states(deployment)
    return {
        "name": deployment.deployment_name,
        "model": deployment.model,
        "source": deployment.source,
        "state": fleet_state(deployment, states),
        "sites": deployment.site_names,
        "replicas": {site: len(deployment.replicas(site)) for site in deployment.site_names},
        "servers": sum(1 for state in states if state.role == "server" and state.running),
        "gateway_port": deployment.gateway_port,
        "gateway_urls": deployment.gateway_urls,
        "dns": deployment.dns.address if deployment.dns is not None else None,
        "policy": deployment.policy,
        "folder": deployment.folder,
        "started_at": deployment.started_at,
    }


def scale_command(
    name: str | None = typer.Argument(
        None, help="The deployment. Default: the only one here.", show_default=False
    ),
    site: str = typer.Option(..., "--site", help="The site whose model servers to add or remove."),
    replicas: int = typer.Option(
        ..., "--replicas", min=1, max=MAX_REPLICAS, help="How many model servers SITE should run."
    ),
    timeout_s: float = typer.Option(
        180.0, "--timeout", min=1.0, help="Seconds to wait for the supervisor to finish."
    ),
    platform: Path | None = PLATFORM_HERE,
    as_json: bool = JSON,
) -> None:
    """Run REPLICAS model servers for SITE, live: new ones serve once ready; removed ones drain first."""
    chosen = require_deployment(workspace_here(platform).serve_dir, name)
    deployment = chosen.deployment
    if site not in deployment.site_names:
        raise ConfigError(
            f"unknown site {site!r}; deployment {chosen.name} serves from {', '.join(deployment.site_names)}",
            field="--site",
        )

    def supervisor_alive() -> bool:
        return is_running(deployment.supervisor_pid, deployment.supervisor_command or SUPERVISOR_MARKER)

    if not supervisor_alive():
        raise ServingError(
            f"the supervisor (pid {deployment.supervisor_pid}) of {chosen.name} is not running, and only it "
            f"starts and stops model servers: `stratus serve stop --name {chosen.name}`, then serve again",
            status=503,
        )
    request = submit(chosen.folder, "scale", {"site": site, "replicas": replicas})
    outcome = wait_answer(chosen.folder, request, supervisor_alive, timeout_s)
    if not outcome.get("ok"):
        raise ServingError(f"scale refused: {outcome.get('error')}", status=int(outcome.get("status", 500)))
    if as_json:
        print_json({"name": chosen.name, **{k: v for k, v in outcome.items() if k != "ok"}})
        return
    out = console()
    before, after = outcome["before"], outcome["after"]
    if before == after:
        out.print(f"{chosen.name}: site {site} already runs {after} model servers")
    else:
        out.print(f"{chosen.name}: site {site} scaled from {before} to {after} model servers")
    for added in outcome["added"]:
        out.print(f"  added {added['name']} at {added['url']} (pid {added['pid']}) on every gateway")
    for removed in outcome["removed"]:
        out.print(f"  removed {removed}: drained on every gateway, in-flight requests finished, stopped")
    for note in outcome["notes"]:
        out.print(f"  [yellow]note:[/] {escape(note)}")
