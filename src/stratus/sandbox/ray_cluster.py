"""A real local Ray cluster: a head node and worker nodes, each ``ray start --block`` in its own session.

One implementation serves ``stratus sandbox up --ray SITE``, ``make demo-scale``, the benchmarks and the
test fixtures. Every node gets ports chosen at run time (GCS, dashboard, client server, node and object
managers, agents, metrics, and a worker port range of its own), so several clusters and other people's
Ray never collide; the cluster's files live in a temp dir of its own. Nodes are stopped by their
process group (``ray start --block`` and everything it started), never with ``ray stop``, which kills
every Ray process on the machine by name.

Ray turns ``127.0.0.1`` into the machine's outward address, so the nodes use another loopback address
(:data:`NODE_IP`): nothing leaves the machine. On a loaded machine a node may fail to start (its raylet
gives the dashboard agent 15 s to write its port file, a limit Ray does not let us raise), so a start
that fails is retried with fresh ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from stratus.errors import ExecutorError
from stratus.processes import free_ports, installed_binary, spawn

__all__ = [
    "NODE_IP",
    "NodeSpec",
    "RayCluster",
    "RayNode",
    "alive_nodes",
    "cluster_up",
    "start_ray_cluster",
    "stop_node",
    "stop_ray_cluster",
]

#: A loopback address Ray does not rewrite (it replaces 127.0.0.1 with the machine's outward address).
NODE_IP = "127.0.0.3"
START_ATTEMPTS = 4
_WORKER_PORTS = 60  # per node: each Ray worker process (task or actor) listens on one
_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "300",  # the dashboard loads slowly on a busy 2-core machine
    "RAY_raylet_start_wait_time_s": "300",
    "RAY_agent_register_timeout_ms": "300000",
}


@dataclass(frozen=True)
class NodeSpec:
    """What one node declares to Ray: logical CPUs and memory (what steps may ask for), GPUs, and the
    accelerator type those GPUs are (``accelerator_type:NAME``, as Ray labels real GPU nodes)."""

    cpus: int = 4
    memory_gb: float = 16.0
    gpus: int = 0
    accelerator: str | None = None

    def flags(self) -> list[str]:
        """The ``ray start`` flags for these resources."""
        flags = ["--num-cpus", str(self.cpus), "--memory", str(int(self.memory_gb * 1e9))]
        if self.gpus:
            flags += ["--num-gpus", str(self.gpus)]
        if self.accelerator:
            flags += ["--resources", json.dumps({f"accelerator_type:{self.accelerator}": 1})]
        return flags


@dataclass
class RayNode:
    """One ``ray start --block`` process: the leader of its own process group."""

    role: str  # "head" or "worker"
    pid: int
    command: list[str]
    log: str
    created: float = 0.0  # the process's start time: a reused PID has another, so it is never ours


@dataclass
class RayCluster:
    """A started cluster: where its Jobs API is, its temp dir, and each node's process."""

    gcs_port: int
    dashboard_port: int
    temp_dir: str
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The Jobs API (dashboard) address: what ``compute.address`` of a Ray site holds."""
        return f"http://{NODE_IP}:{self.dashboard_port}"

    def to_json(self) -> dict[str, Any]:
        """Serialisable form, for a state file."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RayCluster:
        """Read back :meth:`to_json`."""
        nodes = [RayNode(**n) for n in data.get("nodes", [])]
        return cls(data["gcs_port"], data["dashboard_port"], data["temp_dir"], nodes)


def _ray_binary() -> str:
    found = installed_binary("ray")
    if not found:
        raise ExecutorError("Ray is not installed: pip install 'stratus[ray]'")
    return found


def _node_command(role: str, spec: NodeSpec, temp_dir: str, gcs_port: int, dashboard_port: int) -> list[str]:
    ports = free_ports(7 + _WORKER_PORTS)
    node_manager, object_manager, agent_listen, agent_grpc, runtime_env, metrics, client = ports[:7]
    command = [_ray_binary(), "start", "--block", "--disable-usage-stats", "--node-ip-address", NODE_IP]
    command += [
        "--node-manager-port", str(node_manager), "--object-manager-port", str(object_manager),
        "--dashboard-agent-listen-port", str(agent_listen), "--dashboard-agent-grpc-port", str(agent_grpc),
        "--runtime-env-agent-port", str(runtime_env), "--metrics-export-port", str(metrics),
        "--worker-port-list", ",".join(str(p) for p in ports[7:]),
        "--object-store-memory", str(100_000_000),
    ]  # fmt: skip
    if role == "head":
        command += [
            "--head", "--port", str(gcs_port), "--temp-dir", temp_dir,
            "--dashboard-host", NODE_IP, "--dashboard-port", str(dashboard_port),
            "--ray-client-server-port", str(client),
        ]  # fmt: skip
    else:
        command += ["--address", f"{NODE_IP}:{gcs_port}"]
    return command + spec.flags()


def alive_nodes(address: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The cluster's alive nodes as its state API lists them; empty when it does not answer."""
    url = f"{address}/api/v0/nodes?limit=100&filter_keys=state&filter_predicates=%3D&filter_values=ALIVE"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            payload = json.loads(response.read())
    except (OSError, ValueError):
        return []
    rows = payload.get("data", {}).get("result", {}).get("result", [])
    return [row for row in rows if isinstance(row, dict)]


def _running(node: RayNode) -> bool:
    try:
        process = psutil.Process(node.pid)
        return process.create_time() == node.created and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def cluster_up(cluster: RayCluster) -> bool:
    """Every node's process is alive and the Jobs API lists them all as alive."""
    if not all(_running(n) for n in cluster.nodes):
        return False
    return len(alive_nodes(cluster.address)) >= len(cluster.nodes)


def stop_node(node: RayNode, *, hard: bool = True, timeout_s: float = 15.0) -> None:
    """Stop one node: its whole process group (the raylet, its agents and workers), by PGID. Idempotent.

    ``hard`` (the default) is SIGKILL, as a lost machine ends; otherwise SIGTERM first, then SIGKILL.
    Descendants that left the group (Ray starts some in sessions of their own) are killed by PID.
    """
    if not _running(node):
        return
    try:
        family = [node.pid, *(p.pid for p in psutil.Process(node.pid).children(recursive=True))]
    except psutil.Error:
        family = [node.pid]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(node.pid, signal.SIGKILL if hard else signal.SIGTERM)
    deadline = time.monotonic() + (0 if hard else timeout_s)
    while not hard and _running(node) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(node.pid, signal.SIGKILL)
    for pid in family:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(node.pid, os.WNOHANG)


def stop_ray_cluster(cluster: RayCluster, *, keep_files: bool = False) -> None:
    """Stop every node (workers first) by process group, and remove the cluster's temp dir."""
    for node in reversed(cluster.nodes):
        stop_node(node)
    if not keep_files:
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)


def _start_node(
    role: str, spec: NodeSpec, temp_dir: str, gcs_port: int, dashboard_port: int, log: Path
) -> RayNode:
    command = _node_command(role, spec, temp_dir, gcs_port, dashboard_port)
    # Jobs run ``python -m stratus...``: on these nodes that is the interpreter running Ray and Stratus.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    process = spawn(command, log, env={**os.environ, **_ENV, "PATH": path})
    return RayNode(role, process.pid, command, str(log), psutil.Process(process.pid).create_time())


def _raylet(node: RayNode) -> psutil.Process | None:
    try:
        family = psutil.Process(node.pid).children(recursive=True)
    except psutil.Error:
        return None
    return next((p for p in family if _name(p) == "raylet"), None)


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.Error:
        return ""


def _wait(cluster: RayCluster, count: int, timeout_s: float) -> str | None:
    """None once ``count`` nodes are alive; else why not (a node exited, its raylet died, or the
    deadline passed). A raylet that gave up waiting for its agents is seen at once, not after
    ``ray start``'s own timeouts."""
    deadline = time.monotonic() + timeout_s
    raylet: psutil.Process | None = None
    node = cluster.nodes[-1]
    while time.monotonic() < deadline:
        dead = [n for n in cluster.nodes if not _running(n)]
        if dead:
            return f"the {dead[0].role} node exited; log tail:\n{_tail(dead[0].log)}"
        if raylet is None:
            raylet = _raylet(node)
        elif not raylet.is_running() or raylet.status() == psutil.STATUS_ZOMBIE:
            return f"the {node.role} node's raylet died (see {cluster.temp_dir}/session_latest/logs)"
        if len(alive_nodes(cluster.address)) >= count:
            return None
        time.sleep(1.0)
    return f"{count} node(s) were not alive within {timeout_s:.0f} s"


def _tail(log: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(log).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_ray_cluster(
    folder: Path,
    nodes: list[NodeSpec] | None = None,
    *,
    timeout_s: float = 240.0,
    attempts: int = START_ATTEMPTS,
) -> RayCluster:
    """Start a head node and then each worker node (``nodes[0]`` is the head); return once the Jobs API
    lists every node alive. Logs go to ``folder``; Ray's own files to a short temp dir (its unix socket
    paths must stay under 108 characters). A failed start is stopped and retried with fresh ports."""
    specs = nodes or [NodeSpec(), NodeSpec()]
    folder.mkdir(parents=True, exist_ok=True)
    why = ""
    for attempt in range(1, attempts + 1):
        temp_dir = tempfile.mkdtemp(prefix="stratus-ray-")
        gcs_port, dashboard_port = free_ports(2)
        cluster = RayCluster(gcs_port, dashboard_port, temp_dir)
        try:
            for i, spec in enumerate(specs):
                role = "head" if i == 0 else "worker"
                log = folder / f"ray-{role}-{i}.log"
                cluster.nodes.append(_start_node(role, spec, temp_dir, gcs_port, dashboard_port, log))
                problem = _wait(cluster, i + 1, timeout_s)
                if problem is not None:
                    raise ExecutorError(f"attempt {attempt}: {problem}")
        except ExecutorError as exc:
            why = str(exc)
            stop_ray_cluster(cluster)
            continue
        except BaseException:
            stop_ray_cluster(cluster)
            raise
        return cluster
    raise ExecutorError(f"could not start a local Ray cluster in {attempts} attempt(s); last: {why}")
