"""``stratus serve``: a model served from several sites behind one or more gateways.

``status``, ``stop``, ``drain``, ``undrain`` and ``weights`` live in :mod:`stratus.cli.serve_admin_cmd`,
``ls`` and ``scale`` in :mod:`stratus.cli.serve_scale_cmd`. Each deployment is named (its model's name
in URLs, or ``--name``) and lives in ``.stratus/serve/NAME/``; several can run side by side, each with
its own gateway port.

``stratus serve MODEL --sites A,B`` is the everyday form (the ``start`` subcommand is implied), so the
group routes any first argument that is not a subcommand to ``start``.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from stratus.cli import serve_admin_cmd, serve_scale_cmd
from stratus.cli.inputs import JSON, PLATFORM_HERE, workspace_here
from stratus.cli.output import console, print_json
from stratus.config.names import check_safe_name
from stratus.errors import ConfigError, ServingError
from stratus.limits import name_problem
from stratus.private_files import private_dir
from stratus.processes import spawn, stop_process
from stratus.serving.deployment import SUPERVISOR_MARKER, Deployment, load_deployment
from stratus.serving.deployments import deployment_folder, list_deployments
from stratus.serving.fleet import (
    MAX_REPLICAS,
    POLICIES,
    Fleet,
    FleetOptions,
    check_ports_free,
    dns_available,
    log_tail,
)
from stratus.serving.fleet_state import process_states
from stratus.serving.worker import ControlWorker
from stratus.units import format_usd

if TYPE_CHECKING:
    from stratus.catalog import Offering
    from stratus.config import Platform
    from stratus.workspace import Workspace

# Only `serve start` plans, opens stores and reads the registry: the planner, policy engine and model
# sources are imported there, so `serve status|stop|ls|drain` (one module for the whole group) start in
# a fraction of the time.

__all__ = ["app"]


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
        "  stratus serve model.onnx --sites a,b --gateways 2 --detach   gateways on 127.0.0.1 and .2\n\n"
        "  stratus serve model.onnx --sites a,b --replicas 2 --name fraud --port 8081 --detach\n\n"
        "  stratus serve ls                every deployment here: model, sites, replicas, ports, state\n\n"
        "  stratus serve scale fraud --site a --replicas 3   live, without failing a request\n\n"
        "  stratus serve status --json     every process, and each site as each gateway sees it\n\n"
        "  stratus serve drain a | undrain a | weights a=3,b=1   on every gateway\n\n"
        "  stratus serve stop --name fraud   stop a deployment (also what a dead supervisor left)\n\n"
        "Clients call http://127.0.0.1:PORT/v2/models/NAME/infer; a gateway retries another site when one "
        "fails and ejects sites that fail health checks; a gateway or server that dies is restarted. "
        "Ctrl-C stops everything."
    ),
    no_args_is_help=True,
)


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
    port: int = typer.Option(
        8080, "--port", min=1, max=65535, help="The gateways' port (gateway i on 127.0.0.i)."
    ),
    grpc_port: int | None = typer.Option(
        None,
        "--grpc-port",
        min=1,
        max=65535,
        help="Also serve the V2 gRPC protocol at the gateways on this port (servers get ports of their own).",
    ),
    gateways: int = typer.Option(
        1, "--gateways", min=1, max=254, help="Gateways to run active-active, each routing to every site."
    ),
    dns_port: int | None = typer.Option(
        None,
        "--dns-port",
        min=1,
        max=65535,
        help="Also run the health-checked DNS responder on 127.0.0.1:PORT (UDP and TCP).",
    ),
    dns_name: str | None = typer.Option(
        None, "--dns-name", help="The name it answers with the live gateways. Default: MODEL.stratus.local."
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        help="The model's name in URLs, and the deployment's (its folder .stratus/serve/NAME). "
        "Default: the pipeline, registered model or file name.",
    ),
    replicas: int = typer.Option(
        1,
        "--replicas",
        min=1,
        max=MAX_REPLICAS,
        help="Model servers per site, each a backend of the gateways; `serve scale` changes it live.",
    ),
    platform: Path | None = PLATFORM_HERE,
    detach: bool = typer.Option(False, "--detach", help="Start in the background and return once ready."),
    as_json: bool = JSON,
) -> None:
    """Start a model server per site and the gateways; print the endpoints; Ctrl-C stops everything."""
    if policy not in POLICIES:
        raise typer.BadParameter(f"{policy!r} is not a policy; expected one of {', '.join(POLICIES)}")
    if name is not None and (problem := name_problem(name)):  # it is a URL segment of every request
        raise ConfigError(problem, field="--name")
    if dns_port is not None and not dns_available():
        raise ConfigError(
            "the health-checked DNS responder (stratus.serving.dns) is not part of this installation; "
            "leave --dns-port out, or point clients at the gateways' addresses",
            field="--dns-port",
        )
    if dns_name is not None and dns_port is None:
        raise ConfigError(
            "--dns-name names what the DNS responder answers: add --dns-port", field="--dns-name"
        )
    if name is not None:
        check_safe_name(name, "--name")
    from stratus.policy import policy_gate
    from stratus.serving.source import RegistryAccess, check_sites, resolve_model, stage_model

    workspace = workspace_here(platform)
    platform_file, model_platform = workspace.platform_file, workspace.platform
    site_list = _check_sites(sites, model_platform, platform_file)
    root = workspace.serve_dir
    repo = workspace.repository
    registry = RegistryAccess.of(workspace)
    source = resolve_model(model, repo, name, registry)
    deployment_name = name or check_safe_name(source.name, "--name")
    folder = deployment_folder(root, deployment_name)
    stores = dict(workspace.stores(site_list))
    gate = policy_gate(model_platform, platform_file.parent)
    try:
        check_sites(source, stores, gate)
    finally:
        gate.close()
    holders = _refuse_if_running(root, deployment_name)
    fleet_options = FleetOptions(
        policy,
        port,
        gateways=gateways,
        grpc_port=grpc_port,
        replicas=replicas,
        dns_port=dns_port,
        dns_name=dns_name.strip() if dns_name else None,
    )
    check_ports_free(fleet_options, holders)
    if detach:
        _start_detached(model, site_list, deployment_name, platform_file, folder, fleet_options, as_json)
        return
    paths = stage_model(source, stores, repo, folder / "models", workspace.store)
    machines = _serving_machines(workspace, site_list)
    costs = {site: float(o.price_per_hour_usd) for site, o in machines.items()}
    fleet = Fleet(
        source.name,
        source.description,
        paths,
        costs,
        folder,
        fleet_options,
        name=deployment_name,
        machines={site: (o.name, o.vcpus) for site, o in machines.items()},
        model_version=source.version,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    deployment = fleet.start()
    scaler = ControlWorker(fleet)  # scale and roll requests: the supervisor owns the servers they add
    scaler.start()
    try:
        if as_json:
            print_json(deployment.to_json())
        else:
            _print_started(deployment)
        sys.stdout.flush()
        fleet.supervise(stop)
    finally:
        fleet.stop()
        scaler.stop()
    if not as_json:
        console().print("stopped: every gateway and every site's server")


def _refuse_if_running(root: Path, name: str) -> dict[int, str]:
    """Refuse a second deployment of ``name`` (it would orphan the first); the others' ports by port.

    Deployments of other names may run beside it, each on its own gateway port.
    """
    ports: dict[int, str] = {}
    for listed in list_deployments(root):
        current = listed.deployment
        alive = [state.label for state in process_states(current) if state.running]
        if not alive:
            continue
        if listed.name == name:
            raise ServingError(
                f"a deployment named {name!r} is already running here (model {current.model}, gateway "
                f"{current.gateway_url}; alive: {', '.join(alive)}): stop it with `stratus serve stop "
                f"--name {name}`, or start this one with another --name",
                status=409,
            )
        ports[current.gateway_port] = listed.name
        if current.dns is not None:
            ports[current.dns.port] = listed.name
    return ports


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


def _serving_machines(workspace: Workspace, sites: list[str]) -> dict[str, Offering]:
    """Each site's cheapest on-demand CPU machine with at least 2 vCPUs and 4 GB: what the `cost` policy
    ranks by. The machine may have more vCPUs than 2 (the catalog's smallest fitting one); tables name
    its real vCPUs. A site with no fitting offering is absent (its price counts as 0)."""
    from stratus.planner import site_offerings

    platform = workspace.platform
    offerings = site_offerings(
        platform.model_copy(update={"sites": {s: platform.sites[s] for s in sites}}), workspace.catalog
    )
    machines: dict[str, Offering] = {}
    for site in sites:
        fitting = [
            o
            for o in offerings.offerings[site]
            if o.accelerator is None and o.vcpus >= 2 and o.memory_gb >= 4
        ]
        if fitting:
            machines[site] = min(fitting, key=lambda o: (o.price_per_hour_usd, o.vcpus, o.name))
    return machines


def _print_started(deployment: Deployment) -> None:
    out = console()
    out.print(
        f"serving [bold]{escape(deployment.model)}[/] ({escape(deployment.source)}) from "
        f"{len(deployment.site_names)} sites ({len(deployment.sites)} model servers) through "
        f"{len(deployment.gateways)} gateways, "
        f"policy {deployment.policy}"
    )
    table = Table("site", "replica", "server", "machine", "$/h", "log")
    for site in deployment.sites.values():
        table.add_row(
            site.site, str(site.replica), site.url, site.machine, format_usd(site.cost_per_hour), site.log
        )
    out.print(table)
    for gateway in deployment.gateways:
        out.print(
            f"endpoint: [bold]{gateway.url}/v2/models/{escape(deployment.model)}/infer[/] ({gateway.name})"
        )
        if deployment.grpc_port is not None:
            out.print(f"gRPC: [bold]{gateway.host}:{deployment.grpc_port}[/] ({gateway.name})")
    if deployment.dns is not None:
        out.print(f"DNS: {escape(deployment.dns.name)} answered at {deployment.dns.address} (UDP and TCP)")
    name = escape(deployment.deployment_name)
    out.print(
        f"status: stratus serve status --name {name}    scale: stratus serve scale {name} --site SITE "
        "--replicas N    stop: Ctrl-C"
    )


def _start_detached(
    model: str,
    sites: list[str],
    name: str,
    platform_file: Path,
    folder: Path,
    options: FleetOptions,
    as_json: bool,
) -> None:
    """Run the foreground command as a background supervisor and wait until its gateways are ready."""
    command = [sys.executable, "-m", "stratus", "serve", "start", model, "--sites", ",".join(sites)]
    command += ["--policy", options.policy, "--port", str(options.gateway_port)]
    command += ["--gateways", str(options.gateways), "--platform", str(platform_file)]
    command += ["--replicas", str(options.replicas), "--name", name]
    if options.grpc_port is not None:
        command += ["--grpc-port", str(options.grpc_port)]
    if options.dns_port is not None:
        command += ["--dns-port", str(options.dns_port)]
    if options.dns_name:
        command += ["--dns-name", options.dns_name]
    log = private_dir(folder) / "supervisor.log"
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
                console().print(
                    f"running in the background (pid {process.pid}); stop: stratus serve stop --name {name}"
                )
            return
        if process.poll() is not None:
            raise ServingError(f"`stratus serve` exited before it was ready:\n{log_tail(log)}", status=500)
        time.sleep(0.1)
    stop_process(process.pid, SUPERVISOR_MARKER, process)
    raise ServingError(f"the deployment was not ready within 120 s:\n{log_tail(log)}", status=500)


app.command("status")(serve_admin_cmd.status_command)
app.command("stop")(serve_admin_cmd.stop_command)
app.command("drain")(serve_admin_cmd.drain_command)
app.command("undrain")(serve_admin_cmd.undrain_command)
app.command("weights")(serve_admin_cmd.weights_command)
app.command("ls")(serve_scale_cmd.ls_command)
app.command("scale")(serve_scale_cmd.scale_command)
