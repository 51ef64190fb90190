"""``stratus serve status|stop|drain|undrain|weights``: a running deployment, seen and steered from outside.

Each takes ``--name`` (the deployment's name); without it the platform's only deployment is meant
(:mod:`stratus.serving.deployments`).

None of these asks the supervisor anything: they read the deployment record, check each recorded PID
against its command line, and talk to every gateway through its bearer-token admin API (the token comes
from the owner-only record and is never printed). So they work, and tell the truth, when the deployment
is half dead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from stratus.cli.inputs import DEPLOYMENT, JSON, PLATFORM_HERE, workspace_here
from stratus.cli.output import console, print_json, stderr
from stratus.errors import ServingError
from stratus.processes import stop_process
from stratus.serving.deployment import SUPERVISOR_MARKER, Deployment, load_deployment
from stratus.serving.deployments import choose_deployment, require_deployment
from stratus.serving.fleet import stop_deployment
from stratus.serving.fleet_state import ProcessState, fleet_state, gateway_views, process_states
from stratus.serving.gateway_client import admin_post
from stratus.serving.operator import (
    check_site,
    load_operator_state,
    parse_weights,
    save_operator_state,
)

__all__ = [
    "drain_command",
    "status_command",
    "stop_command",
    "undrain_command",
    "weights_command",
]

# `serve status` exits 0 when every process is up, 1 when nothing runs, 3 when some are up and some not.
EXIT_DEGRADED = 3


def _deployment(platform: Path | None, name: str | None) -> Deployment | None:
    chosen = choose_deployment(workspace_here(platform).serve_dir, name)
    return chosen.deployment if chosen is not None else None


# -- status ---------------------------------------------------------------------------------------------


def status_command(
    name: str | None = DEPLOYMENT, platform: Path | None = PLATFORM_HERE, as_json: bool = JSON
) -> None:
    """Every process of the deployment (running or dead) and each site as each gateway sees it.

    Exit 0 when every process runs, 3 when some do and some do not, 1 when none is running.
    """
    deployment = _deployment(platform, name)
    if deployment is None:
        if as_json:
            print_json({"running": False})
        else:
            stderr().print("no deployment is running: start one with `stratus serve MODEL --sites A,B`")
        raise typer.Exit(1)
    states = process_states(deployment)
    overall = fleet_state(deployment, states)
    views = gateway_views(deployment, states)
    problems = _problems(deployment, states)
    if as_json:
        print_json(_status_json(deployment, states, overall, views, problems))
    else:
        _print_status(deployment, states, overall, views, problems)
    if overall == "stopped":
        raise typer.Exit(1)
    if overall != "running":
        raise typer.Exit(EXIT_DEGRADED)


def _problems(deployment: Deployment, states: list[ProcessState]) -> list[str]:
    """What a user must know, in words: a dead supervisor first (nothing will heal what is dead)."""
    problems = []
    supervisor, others = states[0], states[1:]
    if not supervisor.running:
        alive = sum(1 for s in others if s.running)
        problems.append(
            f"the supervisor (pid {supervisor.pid}) is not running, so nothing restarts a process that "
            f"dies; {alive} of {len(others)} processes are still up: `stratus serve stop` stops them"
        )
    for state in others:
        if not state.running:
            restart = "the supervisor restarts it" if supervisor.running else "nothing will restart it"
            problems.append(f"{state.label} is dead; {restart}")
    if not deployment.ready and supervisor.running:
        problems.append("the deployment is still starting")
    return problems


def _status_json(
    deployment: Deployment,
    states: list[ProcessState],
    overall: str,
    views: dict[str, dict[str, dict[str, Any]] | str],
    problems: list[str],
) -> dict[str, Any]:
    payload: dict[str, Any] = {"running": overall != "stopped", "state": overall, **deployment.to_json()}
    by_key = {(s.role, s.name): s for s in states}
    payload["supervisor"] = by_key[("supervisor", "supervisor")].to_json()
    payload["processes"] = [s.to_json() for s in states]
    payload["problems"] = problems
    for record in payload["gateways"]:
        view = views[record["name"]]
        record["state"] = by_key[("gateway", record["name"])].to_json()["state"]
        record["sites"] = view if isinstance(view, dict) else {}
        record["error"] = None if isinstance(view, dict) else view
    for name, record in payload["sites"].items():
        record["state"] = by_key[("server", name)].to_json()["state"]
        seen = {gateway: view[name] for gateway, view in views.items() if isinstance(view, dict)}
        record["gateway"] = next(iter(seen.values()), {})  # the first answering gateway's view
        record["gateways"] = {gateway: site["state"] for gateway, site in seen.items()}
    if deployment.dns is not None:
        payload["dns"]["state"] = by_key[("dns", deployment.dns.name)].to_json()["state"]
    return payload


def _print_status(
    deployment: Deployment,
    states: list[ProcessState],
    overall: str,
    views: dict[str, dict[str, dict[str, Any]] | str],
    problems: list[str],
) -> None:
    out = console()
    colour = {"running": "green", "starting": "yellow"}.get(overall, "red")
    out.print(
        f"[bold]{escape(deployment.model)}[/] ({escape(deployment.source)}), policy {deployment.policy}, "
        f"since {deployment.started_at}: [{colour}]{overall}[/]"
    )
    processes = Table("process", "name", "state", "pid", "address", "restarts", "log")
    for state in states:
        shown = "[green]running[/]" if state.running else "[red]dead[/]"
        processes.add_row(
            state.role,
            state.name,
            shown,
            str(state.pid),
            state.address or "-",
            str(state.restarts),
            state.log or "-",
        )
    out.print(processes)
    answering = {name: view for name, view in views.items() if isinstance(view, dict)}
    sites = Table("site", "seen by the gateways", "latency ms (EWMA)", "requests", "failures", "ejections")
    for site in deployment.sites:
        records = [view[site] for view in answering.values() if site in view]
        seen = sorted({str(r.get("state")) for r in records})
        ewmas = [r["ewma_ms"] for r in records if r.get("ewma_ms") is not None]
        sites.add_row(
            site,
            ", ".join(_coloured(state) for state in seen) or "[red]no gateway answers[/]",
            f"{min(ewmas):.2f}" if ewmas else "-",
            str(sum(int(r.get("requests", 0)) for r in records)),
            str(sum(int(r.get("failures", 0)) for r in records)),
            str(sum(int(r.get("ejections", 0)) for r in records)),
        )
    out.print(sites)
    for name, view in views.items():
        if not isinstance(view, dict):
            out.print(f"[red]gateway {name}: {escape(view)}[/]")
    for problem in problems:
        out.print(f"[yellow]problem:[/] {escape(problem)}")


def _coloured(state: str) -> str:
    colour = {"healthy": "green", "drained": "yellow"}.get(state, "red")
    return f"[{colour}]{state}[/]"


# -- stop -----------------------------------------------------------------------------------------------


def stop_command(name: str | None = DEPLOYMENT, platform: Path | None = PLATFORM_HERE) -> None:
    """Stop the deployment: its supervisor, then whatever is left (also when the supervisor is gone)."""
    chosen = choose_deployment(workspace_here(platform).serve_dir, name)
    if chosen is None:
        console().print("no deployment is running")
        return
    folder, deployment = chosen.folder, chosen.deployment
    supervisor = process_states(deployment)[0]
    if supervisor.running:
        # It stops its own processes in order and removes the record; SIGKILL after 60 s.
        stop_process(supervisor.pid, deployment.supervisor_command or SUPERVISOR_MARKER, timeout_s=60)
    leftover = load_deployment(folder)
    stopped = stop_deployment(leftover) if leftover is not None else []
    out = console()
    if supervisor.running:
        out.print(f"stopped {deployment.model}: the supervisor (pid {supervisor.pid}) and everything it ran")
    else:
        out.print(f"the supervisor (pid {supervisor.pid}) of {deployment.model} was not running")
    if stopped:
        out.print(f"stopped what was left: {', '.join(stopped)}")
    if not supervisor.running:
        out.print("removed the deployment record")


# -- drain, undrain, weights ----------------------------------------------------------------------------


def drain_command(
    site: str = typer.Argument(..., help="The site to take out of rotation.", show_default=False),
    name: str | None = DEPLOYMENT,
    platform: Path | None = PLATFORM_HERE,
) -> None:
    """Take SITE out of rotation on every gateway (requests in flight finish; health checks continue)."""
    deployment = _require(platform, name)
    check_site(deployment, site)
    state = load_operator_state(Path(deployment.folder))
    if site not in state.drained:
        state.drained.append(site)
    save_operator_state(Path(deployment.folder), state)
    _everywhere(deployment, f"drained {site}", lambda url: _post(deployment, url, f"sites/{site}/drain"))


def undrain_command(
    site: str = typer.Argument(..., help="The site to put back in rotation.", show_default=False),
    name: str | None = DEPLOYMENT,
    platform: Path | None = PLATFORM_HERE,
) -> None:
    """Put SITE back in rotation on every gateway (it serves again once its health checks pass)."""
    deployment = _require(platform, name)
    check_site(deployment, site)
    state = load_operator_state(Path(deployment.folder))
    state.drained = [name for name in state.drained if name != site]
    save_operator_state(Path(deployment.folder), state)
    _everywhere(deployment, f"undrained {site}", lambda url: _post(deployment, url, f"sites/{site}/undrain"))


def weights_command(
    weights: str = typer.Argument(
        ..., help="SITE=WEIGHT pairs, e.g. a=3,b=1 (sites not named keep theirs).", show_default=False
    ),
    name: str | None = DEPLOYMENT,
    platform: Path | None = PLATFORM_HERE,
) -> None:
    """Set the sites' weights for the `weighted` policy on every gateway: a=3,b=1 sends 3 in 4 to a."""
    deployment = _require(platform, name)
    parsed = parse_weights(weights, deployment)
    state = load_operator_state(Path(deployment.folder))
    state.weights.update(parsed)
    save_operator_state(Path(deployment.folder), state)

    def apply(url: str) -> None:
        for site, weight in parsed.items():
            _post(deployment, url, f"sites/{site}/weight/{weight!r}")

    shown = ",".join(f"{site}={weight:g}" for site, weight in parsed.items())
    _everywhere(deployment, f"set weights {shown}", apply)
    if deployment.policy != "weighted":
        stderr().print(
            f"note: this deployment routes by {deployment.policy}; weights decide only under "
            "--policy weighted (they are kept for when it does)"
        )


def _require(platform: Path | None, name: str | None) -> Deployment:
    return require_deployment(workspace_here(platform).serve_dir, name).deployment


def _post(deployment: Deployment, url: str, path: str) -> None:
    admin_post(url, deployment.admin_token, f"/admin/{path}")


def _everywhere(deployment: Deployment, done: str, action: Callable[[str], None]) -> None:
    """Run ``action`` on every live gateway; a dead one gets it from the supervisor when restarted.

    Raises ServingError (exit 1) naming each gateway that did not get it and will not.
    """
    states = {s.name: s for s in process_states(deployment) if s.role in ("gateway", "supervisor")}
    supervised = states["supervisor"].running
    applied: list[str] = []
    later: list[str] = []
    failed: list[str] = []
    for gateway in deployment.gateways:
        if not states[gateway.name].running:
            (later if supervised else failed).append(f"{gateway.name} ({gateway.url}) is not running")
            continue
        try:
            action(gateway.url)
        except ServingError as exc:
            failed.append(f"{gateway.name}: {exc.detail}")
            continue
        applied.append(f"{gateway.name} ({gateway.url})")
    out = console()
    if applied:
        out.print(f"{done} on {len(applied)} of {len(deployment.gateways)} gateways: {', '.join(applied)}")
    for item in later:
        out.print(f"{item}; the supervisor applies this when it restarts it")
    if failed:
        raise ServingError("not applied: " + "; ".join(failed), status=503)
