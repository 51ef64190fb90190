"""``stratus serve``: a model served from several sites behind one gateway; ``status`` and ``stop``.

``stratus serve MODEL --sites A,B`` is the everyday form (the ``start`` subcommand is implied), so the
group routes any first argument that is not a subcommand to ``start``.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from stratus.catalog import Catalog
from stratus.cli.inputs import JSON, PLATFORM_HERE
from stratus.cli.output import console, print_json, stderr
from stratus.config import Platform, load_platform, resolve_platform_path
from stratus.errors import ConfigError, ServingError
from stratus.limits import name_problem
from stratus.planner import site_offerings
from stratus.processes import spawn, stop_process
from stratus.runner.context import open_stores
from stratus.serving.deployment import SUPERVISOR_MARKER, Deployment, load_deployment
from stratus.serving.fleet import POLICIES, Fleet, FleetOptions, log_tail, running, stop_deployment
from stratus.serving.gateway_client import site_states
from stratus.serving.source import RegistryAccess, check_sites, resolve_model, stage_model
from stratus.state import Repository, open_database, state_dir, state_url

__all__ = ["app", "serving_folder"]


class _DefaultToStart(TyperGroup):
    """A group whose unknown first word is the MODEL of the implied ``start`` command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # click.Context, vendored by typer
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_DefaultToStart,
    help=(
        "Serve a model from several sites behind one gateway (Open Inference Protocol / KServe V2).\n\n"
        "  stratus serve export.onnx --sites gcp-eu-west,onprem-eu-gpu   the last run's ONNX output\n\n"
        "  stratus serve model.onnx --sites a,b --policy failover --port 9000\n\n"
        "  stratus serve models:/fraud@champion --sites a,b   from the model registry, by alias\n\n"
        "  stratus serve status --json     health, latency and requests per site\n\n"
        "  stratus serve stop              stop a deployment started with --detach\n\n"
        "Clients call http://127.0.0.1:PORT/v2/models/NAME/infer; the gateway retries another site when one "
        "fails and ejects sites that fail health checks. Ctrl-C stops everything."
    ),
    no_args_is_help=True,
)


def serving_folder(platform_file: Path) -> Path:
    """Where a platform's deployment keeps its record, logs and staged models."""
    return state_dir(platform_file) / "serve"


@app.command("start")
def start_command(
    model: str = typer.Argument(
        ...,
        help="An .onnx file; a registered model, models:/NAME@champion; or a run artifact: export.onnx "
        "(latest run), RUN_ID:export.onnx, sha256:HEX.",
        show_default=False,
    ),
    sites: str = typer.Option(..., "--sites", help="Comma-separated sites to serve from, e.g. a,b."),
    policy: str = typer.Option(
        "latency",
        "--policy",
        help="latency: fastest site by observed latency; failover: --sites order; weighted; cost: cheapest.",
    ),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="The gateway's port on 127.0.0.1."),
    name: str | None = typer.Option(
        None, "--name", help="Model name in URLs. Default: the pipeline or file."
    ),
    platform: Path | None = PLATFORM_HERE,
    detach: bool = typer.Option(False, "--detach", help="Start in the background and return once ready."),
    as_json: bool = JSON,
) -> None:
    """Start a model server per site and the gateway; print the endpoint; Ctrl-C stops everything."""
    if policy not in POLICIES:
        raise typer.BadParameter(f"{policy!r} is not a policy; expected one of {', '.join(POLICIES)}")
    if name is not None and (problem := name_problem(name)):  # it is a URL segment of every request
        raise ConfigError(problem, field="--name")
    platform_file = resolve_platform_path(platform)
    model_platform = load_platform(platform_file)
    site_list = _check_sites(sites, model_platform, platform_file)
    folder = serving_folder(platform_file)
    repo = Repository(open_database(state_url(platform_file)))
    registry = RegistryAccess(
        model_platform.registry.tracking_uri if model_platform.registry else None,
        state_dir(platform_file),
        folder / "models" / "registry",
    )
    source = resolve_model(model, repo, name, registry)
    stores = open_stores(model_platform, platform_file.resolve().parent, site_list)
    check_sites(source, stores)
    current = load_deployment(folder)
    if current is not None and current.ready and running(current):
        raise ServingError(
            f"a deployment is already running here (gateway {current.gateway_url}, model {current.model}): "
            "stop it with `stratus serve stop` or Ctrl-C in its terminal",
            status=409,
        )
    if detach:
        _start_detached(model, site_list, policy, port, name, platform_file, folder, as_json)
        return
    paths = stage_model(source, stores, repo, folder / "models")
    costs = _serving_prices(model_platform, site_list, platform_file)
    fleet = Fleet(source.name, source.description, paths, costs, folder, FleetOptions(policy, port))
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    deployment = fleet.start()
    try:
        if as_json:
            print_json(deployment.to_json())
        else:
            _print_started(deployment)
        sys.stdout.flush()
        fleet.supervise(stop)
    finally:
        fleet.stop()
    if not as_json:
        console().print("stopped: gateway and every site's server")


def _check_sites(text: str, platform: Platform, platform_file: Path) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ConfigError("expected at least one site, e.g. --sites a,b", field="--sites")
    for site in names:
        spec = platform.sites.get(site)
        if spec is None:
            raise ConfigError(
                f"unknown site {site!r}; the platform's sites are: {', '.join(platform.sites)}",
                file=str(platform_file),
                field="--sites",
            )
        if spec.compute.backend != "local":
            raise ConfigError(
                f"site {site} runs {spec.compute.backend} compute; `stratus serve` starts local model "
                "servers, so pick sites with compute.backend: local",
                file=str(platform_file),
                field=f"sites.{site}.compute.backend",
            )
    if len(set(names)) != len(names):
        raise ConfigError("a site is listed twice", field="--sites")
    return names


def _serving_prices(platform: Platform, sites: list[str], platform_file: Path) -> dict[str, float]:
    """Each site's cheapest on-demand CPU machine with 2 vCPUs and 4 GB: what the `cost` policy ranks."""
    catalog = Catalog.load(state_dir(platform_file) / "catalog")
    offerings = site_offerings(
        platform.model_copy(update={"sites": {s: platform.sites[s] for s in sites}}), catalog
    )
    prices: dict[str, float] = {}
    for site in sites:
        fitting = [
            o.price_per_hour_usd
            for o in offerings.offerings[site]
            if o.accelerator is None and o.vcpus >= 2 and o.memory_gb >= 4
        ]
        prices[site] = float(min(fitting, default=Decimal(0)))
    return prices


def _print_started(deployment: Deployment) -> None:
    out = console()
    out.print(
        f"serving [bold]{escape(deployment.model)}[/] ({escape(deployment.source)}) from "
        f"{len(deployment.sites)} sites, policy {deployment.policy}"
    )
    table = Table("site", "server", "$/h (2 vCPU)", "log")
    for site in deployment.sites.values():
        table.add_row(site.site, site.url, f"{site.cost_per_hour:.4f}", site.log)
    out.print(table)
    out.print(f"endpoint: [bold]{deployment.gateway_url}/v2/models/{escape(deployment.model)}/infer[/]")
    out.print("status: stratus serve status    drill: stratus chaos kill-site SITE    stop: Ctrl-C")


def _start_detached(
    model: str,
    sites: list[str],
    policy: str,
    port: int,
    name: str | None,
    platform_file: Path,
    folder: Path,
    as_json: bool,
) -> None:
    """Run the foreground command as a background supervisor and wait until its gateway is ready."""
    command = [sys.executable, "-m", "stratus", "serve", "start", model, "--sites", ",".join(sites)]
    command += ["--policy", policy, "--port", str(port), "--platform", str(platform_file)]
    if name:
        command += ["--name", name]
    log = folder / "supervisor.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    process = spawn(command, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        deployment = load_deployment(folder)
        if deployment is not None and deployment.supervisor_pid == process.pid and deployment.ready:
            if as_json:
                print_json(deployment.to_json())
            else:
                _print_started(deployment)
                console().print(f"running in the background (pid {process.pid}); stop: stratus serve stop")
            return
        if process.poll() is not None:
            raise ServingError(f"`stratus serve` exited before it was ready:\n{log_tail(log)}", status=500)
        time.sleep(0.1)
    stop_process(process.pid, SUPERVISOR_MARKER, process)
    raise ServingError(f"the deployment was not ready within 120 s:\n{log_tail(log)}", status=500)


def _running_deployment(platform: Path | None) -> Deployment | None:
    folder = serving_folder(resolve_platform_path(platform))
    deployment = load_deployment(folder)
    if deployment is None or not deployment.ready or not running(deployment):
        return None
    return deployment


@app.command("status")
def status_command(platform: Path | None = PLATFORM_HERE, as_json: bool = JSON) -> None:
    """Each site's health as the gateway sees it, with latency and request counts. Exit 1 if none runs."""
    deployment = _running_deployment(platform)
    if deployment is None:
        if as_json:
            print_json({"running": False})
        else:
            stderr().print("no deployment is running: start one with `stratus serve MODEL --sites A,B`")
        raise typer.Exit(1)
    states = site_states(deployment.gateway_url, deployment.admin_token)
    if as_json:
        payload: dict[str, Any] = {"running": True, **deployment.to_json()}
        for site, record in payload["sites"].items():
            record["gateway"] = states.get(site, {})
        print_json(payload)
        return
    out = console()
    out.print(
        f"[bold]{escape(deployment.model)}[/] at {deployment.gateway_url} "
        f"(policy {deployment.policy}, since {deployment.started_at})"
    )
    table = Table(
        "site", "state", "latency ms (EWMA)", "requests", "failures", "ejections", "restarts", "url"
    )
    for site in deployment.sites.values():
        record = states.get(site.site, {})
        ewma = record.get("ewma_ms")
        table.add_row(
            site.site,
            _coloured(str(record.get("state", "unknown"))),
            "-" if ewma is None else f"{ewma:.2f}",
            str(record.get("requests", 0)),
            str(record.get("failures", 0)),
            str(record.get("ejections", 0)),
            str(site.restarts),
            site.url,
        )
    out.print(table)


def _coloured(state: str) -> str:
    colour = {"healthy": "green", "drained": "yellow"}.get(state, "red")
    return f"[{colour}]{state}[/]"


@app.command("stop")
def stop_command(platform: Path | None = PLATFORM_HERE) -> None:
    """Stop the running deployment (gateway first, then each site's server)."""
    folder = serving_folder(resolve_platform_path(platform))
    deployment = load_deployment(folder)
    if deployment is None or not deployment.ready:
        console().print("no deployment is running")
        return
    stop_process(deployment.supervisor_pid, SUPERVISOR_MARKER, timeout_s=60)
    after = load_deployment(folder)
    if after is not None and after.ready:  # the supervisor was gone: stop what it left behind
        stop_deployment(after)
    console().print(f"stopped {deployment.model} ({len(deployment.sites)} sites and the gateway)")
