"""Kill what a lost site loses, by PID: a model server or a gateway from the deployment record, a store.

The bench does not go through ``stratus chaos``: it signals each process itself, so one drill can take
out a server, a gateway and a store at the same instant. A recorded PID is signalled only while its
command line is still exactly the recorded one, so a reused PID is never hit.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from stratus import sandbox
from stratus.processes import is_running
from stratus.sandbox import Server
from stratus.serving.deployment import Deployment, load_deployment

__all__ = ["kill_gateway", "kill_server", "kill_store", "record"]


def record(serve_folder: Path) -> Deployment:
    """The deployment record as the supervisor last wrote it (it rewrites it on every restart)."""
    deployment = load_deployment(serve_folder)
    if deployment is None:
        raise RuntimeError(f"no deployment record in {serve_folder}")
    return deployment


def _kill(pid: int, command: list[str], what: str) -> int:
    if not is_running(pid, command):
        raise RuntimeError(f"{what} (pid {pid}) is not running; nothing to kill")
    os.kill(pid, signal.SIGKILL)
    return pid


def kill_server(serve_folder: Path, site: str) -> int:
    """SIGKILL ``site``'s model server; returns its PID."""
    server = record(serve_folder).sites[site]
    return _kill(server.pid, server.command, f"the model server of {site}")


def kill_gateway(serve_folder: Path, name: str) -> int:
    """SIGKILL gateway ``name`` (``gateway-2``); returns its PID."""
    gateway = next(g for g in record(serve_folder).gateways if g.name == name)
    return _kill(gateway.pid, gateway.command, f"gateway {name}")


def kill_store(server: Server) -> int:
    """SIGKILL a site's object-store server (no flush, no goodbye); returns its PID once it is gone."""
    pid = server.pid
    if not sandbox.is_up(server):
        raise RuntimeError(f"the {server.kind} store (pid {pid}) is not running; nothing to kill")
    sandbox.stop_server(server, hard=True)
    return pid
