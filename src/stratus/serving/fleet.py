"""Start a model server per site and the gateways in front of them, keep them up, stop them in order.

This is what `stratus serve` runs on a platform's local sites: each site's server (``replicas`` of them,
each a backend of the gateways) is its own process on its own port, reading the model from that site's
store; ``gateways`` gateways (active-active, each routing to
every site) listen on the same port, gateway *i* on loopback address ``127.0.0.i`` (Linux routes all of
127/8 to ``lo``), so a DNS name can list each by its own A record; an optional DNS responder answers that
name with the live gateways. The supervisor restarts any of them that dies on the same address (unless a
drill holds it down for a window, :mod:`.holds`; a server after ``restart_delay_s``, which is what lets the
chaos drill measure how long the gateway takes to eject a site and take it back; a gateway or the DNS
responder at once), with a growing delay for a process that keeps dying young. Stopping goes DNS, gateways,
then servers, so no client is sent to a server that is already gone.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from stratus.errors import ConfigError, ServingError
from stratus.private_files import private_dir, write_private
from stratus.processes import command_line, free_ports, is_running, spawn, stop_process
from stratus.serving.deployment import (
    DNS_MARKER,
    GATEWAY_MARKER,
    SERVER_MARKER,
    Deployment,
    DnsProcess,
    GatewayProcess,
    SiteProcess,
    backend_name,
    remove_deployment,
    save_deployment,
)
from stratus.serving.fleet_state import process_states
from stratus.serving.holds import held
from stratus.serving.limits import ServingLimits, limit_flags
from stratus.serving.operator import apply_state, load_operator_state, remove_operator_state

__all__ = [
    "MAX_REPLICAS",
    "POLICIES",
    "Fleet",
    "FleetOptions",
    "check_ports_free",
    "default_dns_name",
    "dns_available",
    "dns_command",
    "gateway_host",
    "http_ready",
    "log_tail",
    "stop_deployment",
]

POLICIES = ("failover", "latency", "weighted", "cost")

# A process that dies sooner than this after its start is restarted after a doubling delay (up to the
# cap), so a gateway that cannot bind its port does not respawn ten times a second.
_YOUNG_S = 10.0
_MAX_RESTART_DELAY_S = 30.0
# Model servers per site: each is a process with the model in memory, so a typo (--replicas 300) must not
# start hundreds of them.
MAX_REPLICAS = 32

Child = SiteProcess | GatewayProcess | DnsProcess


@dataclass(frozen=True)
class FleetOptions:
    """How the fleet is run; the defaults suit the local platform and the chaos drill."""

    policy: str = "latency"
    gateway_port: int = 8080
    gateways: int = 1
    grpc_port: int | None = None  # the gateways' gRPC port; each server then gets a gRPC port of its own
    replicas: int = 1  # model servers per site at the start; `serve scale` changes one site's live
    dns_port: int | None = None
    dns_name: str | None = None
    drain_s: float = 5.0
    restart_delay_s: float = 1.0
    gateway_restart_delay_s: float = 0.0
    start_timeout_s: float = 60.0
    health_interval_s: float = 0.25
    server_args: tuple[str, ...] = ()
    limits: ServingLimits = field(default_factory=ServingLimits)  # for the servers and the gateway alike
    env: dict[str, str] = field(default_factory=dict)


def gateway_host(index: int) -> str:
    """Gateway ``index`` (0-based) listens on ``127.0.0.{index + 1}``: one loopback address each."""
    if not 0 <= index < 254:
        raise ServingError(f"at most 254 gateways fit on 127.0.0.x, not {index + 1}", status=400)
    return f"127.0.0.{index + 1}"


def default_dns_name(model: str) -> str:
    """``<model>.stratus.local.``, the model name made a valid DNS label."""
    label = re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-")[:63] or "model"
    return f"{label}.stratus.local."


def dns_available() -> bool:
    """Whether this installation has the DNS responder (``stratus.serving.dns``) that ``--dns-port`` runs."""
    return importlib.util.find_spec(DNS_MARKER) is not None


def dns_command(name: str, gateways: list[GatewayProcess], listen_host: str, port: int) -> list[str] | None:
    """The argv of the health-checked DNS responder for these gateways; None when it is not installed.

    The one place that knows ``python -m stratus.serving.dns``'s flags, so the wiring stays in step with it.
    """
    if not dns_available():
        return None
    command = [sys.executable, "-m", DNS_MARKER, "--name", name, "--listen", f"{listen_host}:{port}"]
    for gateway in gateways:
        command += ["--gateway", f"{gateway.name}={gateway.host}:{gateway.port}"]
    return command


def http_ready(url: str, path: str = "/v2/health/ready", timeout_s: float = 1.0) -> bool:
    """True when ``url`` answers ``path`` with 200."""
    host_port = url.removeprefix("http://")
    conn = http.client.HTTPConnection(host_port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def check_ports_free(options: FleetOptions, deployment_by_port: dict[int, str] | None = None) -> None:
    """ConfigError (exit 2, one line naming the port and its flag) when a port the fleet binds is taken.

    Checked before any process starts, so a busy port is one clear line rather than a gateway's log tail
    after a timeout. ``deployment_by_port`` names the deployment of this platform that holds a port.
    """
    holders = deployment_by_port or {}
    wanted = [(gateway_host(i), options.gateway_port, "--port") for i in range(options.gateways)]
    if options.grpc_port is not None:
        wanted += [(gateway_host(i), options.grpc_port, "--grpc-port") for i in range(options.gateways)]
    if options.dns_port is not None:
        wanted.append(("127.0.0.1", options.dns_port, "--dns-port"))
    for host, port, flag in wanted:
        if _bindable(host, port):
            continue
        holder = f" (by deployment {holders[port]!r})" if port in holders else ""
        raise ConfigError(
            f"port {port} on {host} is already in use{holder}; pick a free one with {flag}", field=flag
        )


def _bindable(host: str, port: int) -> bool:
    """Whether a listener could bind ``host:port`` now (SO_REUSEADDR, as uvicorn binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _tcp_listening(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def log_tail(path: str | Path, lines: int = 20) -> str:
    """The end of a process's log, for error messages."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Fleet:
    """A deployment's processes: ``start`` returns once every gateway is ready; ``stop`` is idempotent."""

    def __init__(
        self,
        model: str,
        source: str,
        model_paths: dict[str, Path],
        costs: dict[str, float],
        folder: Path,
        options: FleetOptions | None = None,
        *,
        name: str = "",
        machines: Mapping[str, tuple[str, float]] | None = None,
        model_version: str | None = None,
    ) -> None:
        if not model_paths:
            raise ServingError("no site to serve from: pass --sites A,B", status=400)
        self.options = options or FleetOptions()
        if self.options.policy not in POLICIES:
            raise ServingError(
                f"unknown policy {self.options.policy!r}; expected one of {', '.join(POLICIES)}", status=400
            )
        if self.options.gateways < 1:
            raise ServingError(f"--gateways must be at least 1, not {self.options.gateways}", status=400)
        if not 1 <= self.options.replicas <= MAX_REPLICAS:
            raise ServingError(
                f"--replicas must be from 1 to {MAX_REPLICAS}, not {self.options.replicas}", status=400
            )
        self.name = name or model  # the deployment's name: its folder, and what --name selects
        self.folder = folder
        self.model = model
        self.source = source
        self.model_paths = model_paths
        # The registered version each site serves (None: a file or run artifact, answered as "1"); a
        # rolling update (serving/roller.py) changes a site's path and version together.
        self.model_versions: dict[str, str | None] = dict.fromkeys(model_paths, model_version)
        self.costs = costs
        self.machines = dict(machines or {})  # site → (offering, vCPUs) its cost is the price of
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.deployment: Deployment | None = None
        # Held while the children or the record change (a restart, a scale, the stop): the supervisor
        # loop and a scale in another thread (serving/scaler.py) never see them half changed.
        self.lock = threading.RLock()
        # Servers a scale is starting or stopping: the scale owns them, the loop does not restart them.
        self.unsupervised: set[str] = set()
        self._stopping = threading.Event()
        self._started_at: dict[str, float] = {}
        self._delays: dict[str, float] = {}
        self._unconfigured: set[str] = set()  # restarted gateways that still need the operator's settings

    # -- start ----------------------------------------------------------------------------------------

    def start(self) -> Deployment:
        """Start every site's server, then the gateways, then DNS; on any failure stop what started."""
        check_ports_free(self.options)  # before anything starts: one clear line, not a log tail
        private_dir(self.folder)  # the gateway config and the record hold the admin token
        remove_operator_state(self.folder)  # a new deployment starts with no site drained
        deployment = self._plan()
        self.deployment = deployment
        save_deployment(deployment)  # from here on `serve stop` can clean up, whatever happens to us
        try:
            for site in deployment.sites.values():
                self._launch(site)
            for site in deployment.sites.values():
                self.wait_server(site)
            self.write_gateway_config()
            for gateway in deployment.gateways:
                self._launch(gateway)
            for gateway in deployment.gateways:
                self._wait_http(gateway.url, gateway.log, f"gateway {gateway.name}", _key(gateway))
            if deployment.dns is not None:
                self._launch(deployment.dns)
                self._wait_dns(deployment.dns)
        except BaseException:
            self.stop()
            raise
        deployment.ready = True
        save_deployment(deployment)
        return deployment

    def _plan(self) -> Deployment:
        """The record of every process to start, with ports and command lines, before any starts."""
        options = self.options
        deployment = Deployment(
            model=self.model,
            source=self.source,
            policy=options.policy,
            folder=str(self.folder),
            gateway_port=options.gateway_port,
            admin_token=secrets.token_urlsafe(24),
            supervisor_pid=os.getpid(),
            supervisor_command=command_line(os.getpid()) or [],
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            grpc_port=options.grpc_port,
            name=self.name,
        )
        ports = iter(free_ports(len(self.model_paths) * options.replicas))
        for site in self.model_paths:
            for replica in range(1, options.replicas + 1):
                server = self.plan_server(site, replica, next(ports))
                deployment.sites[server.name] = server
        config_path = self.folder / "gateway.json"
        for i in range(options.gateways):
            host, name = gateway_host(i), f"gateway-{i + 1}"
            command = [sys.executable, "-m", GATEWAY_MARKER, "--config", str(config_path), "--host", host]
            deployment.gateways.append(
                GatewayProcess(name, host, options.gateway_port, 0, str(self.folder / f"{name}.log"), command)
            )
        if options.dns_port is not None:
            deployment.dns = self._plan_dns(deployment.gateways, options.dns_port)
        return deployment

    def plan_server(
        self, site: str, replica: int, port: int, *, model: tuple[Path, str | None] | None = None
    ) -> SiteProcess:
        """Replica ``replica`` of ``site``'s model server on ``port`` (a free one; not started yet).

        ``model`` (a file and its registered version) is another version than the site serves: what a
        rolling update starts beside the old servers.
        """
        path, version = model or (self.model_paths[site], self.model_versions.get(site))
        grpc_port = free_ports(1)[0] if self.options.grpc_port is not None else None
        return SiteProcess(
            site=site,
            port=port,
            pid=0,
            log=str(self.folder / f"{backend_name(site, replica)}.log"),
            command=self._server_command(path, port, grpc_port, version),
            model_path=str(path),
            cost_per_hour=self.costs.get(site, 0.0),
            grpc_port=grpc_port,
            replica=replica,
            offering=self.machines[site][0] if site in self.machines else None,
            vcpus=self.machines[site][1] if site in self.machines else None,
            model_version=version,
        )

    def _plan_dns(self, gateways: list[GatewayProcess], port: int) -> DnsProcess:
        name = self.options.dns_name or default_dns_name(self.model)
        command = dns_command(name, gateways, "127.0.0.1", port)
        if command is None:
            raise ServingError(
                "--dns-port: the DNS responder (stratus.serving.dns) is not part of this installation",
                status=400,
            )
        return DnsProcess(name, "127.0.0.1", port, 0, str(self.folder / "dns.log"), command)

    def _server_command(self, path: Path, port: int, grpc_port: int | None, version: str | None) -> list[str]:
        grpc = [] if grpc_port is None else ["--grpc-port", str(grpc_port)]
        versioned = [] if version is None else ["--model-version", version]
        return [
            sys.executable,
            "-m",
            SERVER_MARKER,
            "--model",
            f"{self.model}={path}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--drain-s",
            str(self.options.drain_s),
            *limit_flags(self.options.limits),
            *grpc,
            *versioned,
            *self.options.server_args,
        ]

    def write_gateway_config(self) -> None:
        """One config for every gateway (each is given its own ``--host``); it holds the admin token.

        Every replica of a site is a backend with the site's priority and cost; a gateway the supervisor
        restarts reads it again, so a scale rewrites it before it changes the running gateways.
        """
        deployment = self.deployment
        assert deployment is not None
        priority = {site: i for i, site in enumerate(deployment.site_names)}
        config = {
            "host": "127.0.0.1",
            "port": deployment.gateway_port,
            "admin_token": deployment.admin_token,
            "health": {"interval_s": self.options.health_interval_s},
            "limits": self.options.limits.model_dump(),
            "sites": [
                {
                    "name": s.name,
                    "site": s.site,
                    "url": s.url,
                    "priority": priority[s.site],
                    "cost_per_hour": s.cost_per_hour,
                    **({} if s.grpc_port is None else {"grpc_port": s.grpc_port}),
                }
                for s in deployment.sites.values()
                if s.name not in self.unsupervised
            ],
            "models": {deployment.model: {"policy": deployment.policy}},
        }
        if deployment.grpc_port is not None:
            config["grpc"] = {"port": deployment.grpc_port}
        config_path = self.folder / "gateway.json"
        write_private(config_path, json.dumps(config, indent=2).encode())

    def launch(self, child: Child) -> None:
        """Start ``child`` (a server a scale adds: the caller puts it in the record once it is ready)."""
        self._launch(child)

    def wait_server(self, server: SiteProcess) -> None:
        """Until ``server`` answers ready; ServingError with its log tail if it exits or takes too long."""
        what = f"the model server {server.name} of site {server.site}"
        self._wait_http(server.url, server.log, what, _key(server))

    def handle(self, child: Child) -> subprocess.Popen[bytes] | None:
        """The supervisor's handle on ``child``'s process (None when it never started one)."""
        return self.processes.get(_key(child))

    def forget(self, child: Child) -> None:
        """Drop a stopped server's handle and bookkeeping (a scale-down took it out of the record)."""
        for table in (self.processes, self._started_at, self._delays):
            table.pop(_key(child), None)

    def _launch(self, child: Child) -> None:
        process = spawn(child.command, Path(child.log), self._env())
        self.processes[_key(child)] = process
        self._started_at[_key(child)] = time.monotonic()
        child.pid = process.pid

    def _env(self) -> dict[str, str] | None:
        return {**os.environ, **self.options.env} if self.options.env else None

    def _wait_http(self, url: str, log: str, what: str, key: str) -> None:
        self._wait(lambda: http_ready(url), log, what, key)

    def _wait_dns(self, dns: DnsProcess) -> None:
        what = f"the DNS responder for {dns.name}"
        self._wait(lambda: _tcp_listening(dns.host, dns.port), dns.log, what, _key(dns))

    def _wait(self, ready: Callable[[], bool], log: str, what: str, key: str) -> None:
        deadline = time.monotonic() + self.options.start_timeout_s
        process = self.processes[key]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServingError(
                    f"{what} exited with code {process.returncode}; log tail:\n{log_tail(log)}", status=500
                )
            if ready():
                return
            time.sleep(0.1)
        raise ServingError(
            f"{what} was not ready within {self.options.start_timeout_s:.0f} s; log tail:\n{log_tail(log)}",
            status=500,
        )

    # -- supervise ------------------------------------------------------------------------------------

    def supervise(self, stop: threading.Event, poll_s: float = 0.1) -> None:
        """Restart any server, gateway or DNS responder that dies, until ``stop`` is set."""
        died_at: dict[str, float] = {}
        while not stop.wait(poll_s):
            deployment = self.deployment
            if deployment is None or self._stopping.is_set():
                return
            with self.lock:  # a scale may be adding or removing servers
                children = _children(deployment)
            for child in children:
                key = _key(child)
                process = self.processes.get(key)
                if process is None or process.poll() is None or child.name in self.unsupervised:
                    continue
                if held(self.folder, key):  # a drill keeps it down for a window (serving/holds.py)
                    died_at.pop(key, None)
                    continue
                now = time.monotonic()
                if key not in died_at:
                    died_at[key] = now
                    self._delays[key] = self._next_delay(child, key, now)
                if now - died_at[key] < self._delays[key]:
                    continue
                del died_at[key]
                self._restart(child)
            self._configure_restarted_gateways(deployment)

    def _next_delay(self, child: Child, key: str, now: float) -> float:
        """The configured delay, doubled for each death in a row of a process younger than ``_YOUNG_S``."""
        base = self.options.restart_delay_s if isinstance(child, SiteProcess) else 0.0
        if now - self._started_at.get(key, 0.0) >= _YOUNG_S:
            return base
        return min(_MAX_RESTART_DELAY_S, max(base, self._delays.get(key, 0.0)) * 2 or 0.5)

    def _restart(self, child: Child) -> None:
        with self.lock:
            if self._stopping.is_set() or self.deployment is None:
                return
            if all(c is not child for c in _children(self.deployment)) or child.name in self.unsupervised:
                return  # a scale-down took it out meanwhile
            self._launch(child)
            child.restarts += 1
            if isinstance(child, GatewayProcess):
                self._unconfigured.add(child.name)
            save_deployment(self.deployment)

    def _configure_restarted_gateways(self, deployment: Deployment) -> None:
        """Give a restarted gateway the operator's drains and weights once it answers (retried each tick)."""
        if not self._unconfigured:
            return
        state = load_operator_state(self.folder)
        for gateway in deployment.gateways:
            if gateway.name not in self._unconfigured:
                continue
            if not http_ready(gateway.url, "/v2/health/live", timeout_s=0.2):
                continue
            try:
                apply_state(gateway.url, deployment.admin_token, state, timeout_s=1.0)
            except ServingError:
                continue
            self._unconfigured.discard(gateway.name)

    # -- stop -----------------------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` began: a scale in progress gives up instead of starting servers."""
        return self._stopping.is_set()

    def stop(self, timeout_s: float = 15.0) -> None:
        """DNS, gateways, then every server; forget the deployment once all are gone."""
        self._stopping.set()
        with self.lock:
            if self.deployment is not None:
                stop_deployment(self.deployment, self.processes, timeout_s)


def _key(child: Child) -> str:
    if isinstance(child, SiteProcess):
        return f"server:{child.name}"
    if isinstance(child, GatewayProcess):
        return f"gateway:{child.name}"
    return "dns"


def _children(deployment: Deployment) -> list[Child]:
    children: list[Child] = [*deployment.sites.values(), *deployment.gateways]
    if deployment.dns is not None:
        children.append(deployment.dns)
    return children


def stop_deployment(
    deployment: Deployment,
    processes: dict[str, subprocess.Popen[bytes]] | None = None,
    timeout_s: float = 15.0,
) -> list[str]:
    """Stop a deployment's processes by their recorded PIDs (DNS, gateways, servers) and forget it.

    ``processes`` are the supervisor's own handles (to reap its children); without them, as after a
    supervisor crash, each PID is signalled only while its command line is exactly the recorded one.
    Returns the processes that were still running (``server cheap (pid 123)``). The record is removed
    once every process is gone; it is kept (and ServingError raised) if one could not be stopped.
    """
    handles = processes or {}
    stopped = []
    order: list[Child] = [deployment.dns] if deployment.dns is not None else []
    order += [*deployment.gateways, *deployment.sites.values()]
    for child in order:
        handle = handles.get(_key(child))
        if not is_running(child.pid, child.command, handle):
            if handle is not None:
                handle.wait()
            continue
        # Nobody is sent to a server once the gateways are gone, so there is nothing to drain: stop it hard.
        hard = isinstance(child, SiteProcess)
        stop_process(child.pid, child.command, handle, hard=hard, timeout_s=timeout_s)
        stopped.append(f"{_key(child).replace(':', ' ')} (pid {child.pid})")
    survivors = [s.label for s in process_states(deployment) if s.running and s.role != "supervisor"]
    if survivors:
        raise ServingError(f"could not stop {', '.join(survivors)}; the record is kept", status=500)
    remove_deployment(Path(deployment.folder))
    remove_operator_state(Path(deployment.folder))
    return stopped
