"""Start a model server per site and the gateway in front of them, keep them up, stop them in order.

This is what `stratus serve` runs on a platform's local sites: each site's server is its own process on
its own port, reading the model from that site's store. The supervisor restarts a site's server that
died (after ``restart_delay_s``, on the same port), which is what lets the chaos drill measure how long
the gateway takes to eject a site and to take it back; a drill's hold (:mod:`.holds`) keeps it down for a
window. Stopping goes gateway first, so no client is sent
to a server that is already gone.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from stratus.errors import ServingError
from stratus.private_files import private_dir, write_private
from stratus.processes import free_ports, is_running, spawn, stop_process
from stratus.serving.deployment import (
    GATEWAY_MARKER,
    SERVER_MARKER,
    Deployment,
    SiteProcess,
    save_deployment,
)
from stratus.serving.holds import held, server_key
from stratus.serving.limits import ServingLimits, limit_flags

__all__ = ["POLICIES", "Fleet", "FleetOptions", "http_ready", "log_tail", "running", "stop_deployment"]

POLICIES = ("failover", "latency", "weighted", "cost")


@dataclass(frozen=True)
class FleetOptions:
    """How the fleet is run; the defaults suit the local platform and the chaos drill."""

    policy: str = "latency"
    gateway_port: int = 8080
    drain_s: float = 5.0
    restart_delay_s: float = 1.0
    start_timeout_s: float = 60.0
    health_interval_s: float = 0.25
    server_args: tuple[str, ...] = ()
    limits: ServingLimits = field(default_factory=ServingLimits)  # for the servers and the gateway alike
    env: dict[str, str] = field(default_factory=dict)


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


def log_tail(path: str | Path, lines: int = 20) -> str:
    """The end of a process's log, for error messages."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Fleet:
    """A deployment's processes: ``start`` returns once the gateway answers ready; ``stop`` is idempotent."""

    def __init__(
        self,
        model: str,
        source: str,
        model_paths: dict[str, Path],
        costs: dict[str, float],
        folder: Path,
        options: FleetOptions | None = None,
    ) -> None:
        if not model_paths:
            raise ServingError("no site to serve from: pass --sites A,B", status=400)
        self.options = options or FleetOptions()
        if self.options.policy not in POLICIES:
            raise ServingError(
                f"unknown policy {self.options.policy!r}; expected one of {', '.join(POLICIES)}", status=400
            )
        self.folder = folder
        self.model = model
        self.source = source
        self.model_paths = model_paths
        self.costs = costs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.deployment: Deployment | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # -- start ----------------------------------------------------------------------------------------

    def start(self) -> Deployment:
        """Start every site's server, then the gateway; on any failure stop what started and raise."""
        private_dir(self.folder)  # the gateway config and the record hold the admin token
        ports = free_ports(len(self.model_paths))
        deployment = Deployment(
            model=self.model,
            source=self.source,
            policy=self.options.policy,
            folder=str(self.folder),
            gateway_port=self.options.gateway_port,
            gateway_pid=0,
            gateway_log=str(self.folder / "gateway.log"),
            admin_token=secrets.token_urlsafe(24),
            supervisor_pid=os.getpid(),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        for (site, path), port in zip(self.model_paths.items(), ports, strict=True):
            deployment.sites[site] = SiteProcess(
                site=site,
                port=port,
                pid=0,
                log=str(self.folder / f"{site}.log"),
                command=self._server_command(path, port),
                model_path=str(path),
                cost_per_hour=self.costs.get(site, 0.0),
            )
        self.deployment = deployment
        try:
            for record in deployment.sites.values():
                self._launch(record)
            for record in deployment.sites.values():
                self._wait(record.url, record.log, f"the model server for site {record.site}", record.site)
            self._start_gateway(deployment)
        except BaseException:
            self.stop()
            raise
        deployment.ready = True
        save_deployment(deployment)
        return deployment

    def _server_command(self, path: Path, port: int) -> list[str]:
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
            *self.options.server_args,
        ]

    def _launch(self, site: SiteProcess) -> None:
        process = spawn(site.command, Path(site.log), self._env())
        self.processes[site.site] = process
        site.pid = process.pid

    def _env(self) -> dict[str, str] | None:
        return {**os.environ, **self.options.env} if self.options.env else None

    def _wait(self, url: str, log: str, what: str, key: str, path: str = "/v2/health/ready") -> None:
        deadline = time.monotonic() + self.options.start_timeout_s
        process = self.processes[key]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServingError(
                    f"{what} exited with code {process.returncode}; log tail:\n{log_tail(log)}", status=500
                )
            if http_ready(url, path):
                return
            time.sleep(0.1)
        raise ServingError(
            f"{what} was not ready within {self.options.start_timeout_s:.0f} s; log tail:\n{log_tail(log)}",
            status=500,
        )

    def _start_gateway(self, deployment: Deployment) -> None:
        config = {
            "host": "127.0.0.1",
            "port": deployment.gateway_port,
            "admin_token": deployment.admin_token,
            "health": {"interval_s": self.options.health_interval_s},
            "limits": self.options.limits.model_dump(),
            "sites": [
                {"name": s.site, "url": s.url, "priority": i, "cost_per_hour": s.cost_per_hour}
                for i, s in enumerate(deployment.sites.values())
            ],
            "models": {deployment.model: {"policy": deployment.policy}},
        }
        config_path = self.folder / "gateway.json"
        write_private(config_path, json.dumps(config, indent=2).encode())
        command = [sys.executable, "-m", GATEWAY_MARKER, "--config", str(config_path)]
        process = spawn(command, Path(deployment.gateway_log), self._env())
        self.processes["__gateway__"] = process
        deployment.gateway_pid = process.pid
        self._wait(deployment.gateway_url, deployment.gateway_log, "the gateway", "__gateway__")

    # -- supervise ------------------------------------------------------------------------------------

    def supervise(self, stop: threading.Event, poll_s: float = 0.1) -> None:
        """Restart a site's server whenever it dies, until ``stop`` is set."""
        died_at: dict[str, float] = {}
        while not stop.wait(poll_s):
            deployment = self.deployment
            if deployment is None or self._stopping.is_set():
                return
            for site in deployment.sites.values():
                process = self.processes.get(site.site)
                if process is None or process.poll() is None:
                    continue
                if held(self.folder, server_key(site.site)):  # a drill keeps it down (serving/holds.py)
                    died_at.pop(site.site, None)
                    continue
                first_seen = died_at.setdefault(site.site, time.monotonic())
                if time.monotonic() - first_seen < self.options.restart_delay_s:
                    continue
                del died_at[site.site]
                self._restart(site)

    def _restart(self, site: SiteProcess) -> None:
        with self._lock:
            if self._stopping.is_set() or self.deployment is None:
                return
            self._launch(site)
            site.restarts += 1
            save_deployment(self.deployment)

    # -- stop -----------------------------------------------------------------------------------------

    def stop(self, timeout_s: float = 15.0) -> None:
        """Gateway first, then every server; mark the record stopped."""
        self._stopping.set()
        with self._lock:
            if self.deployment is not None:
                stop_deployment(self.deployment, self.processes, timeout_s)


def stop_deployment(
    deployment: Deployment,
    processes: dict[str, subprocess.Popen[bytes]] | None = None,
    timeout_s: float = 15.0,
) -> None:
    """Stop a deployment's processes by their recorded PIDs, gateway first, and mark the record stopped.

    ``processes`` are the supervisor's own handles (to reap its children); without them, as after a
    supervisor crash, the PIDs are checked against the command lines before any signal is sent.
    """
    handles = processes or {}
    stop_process(deployment.gateway_pid, GATEWAY_MARKER, handles.get("__gateway__"), timeout_s=timeout_s)
    # Nobody is sent to the servers any more, so there is nothing to drain: stop them hard.
    for site in deployment.sites.values():
        stop_process(site.pid, SERVER_MARKER, handles.get(site.site), hard=True, timeout_s=timeout_s)
    deployment.ready = False
    save_deployment(deployment)


def running(deployment: Deployment) -> bool:
    """True while the deployment's gateway process is alive."""
    return is_running(deployment.gateway_pid, GATEWAY_MARKER)
