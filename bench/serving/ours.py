"""Our model server and our gateway, as the bench starts them (the same commands a user runs)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from bench.serving.model import MODEL_NAME
from bench.serving.processes import SERVER_CPU, Proc, free_port, pin

__all__ = ["GATEWAY_MODULE", "gateway", "gateway_missing", "server"]

GATEWAY_MODULE = "stratus.serving.gateway"


def server(
    work: Path, name: str, model: Path, drain_s: float, port: int | None = None, grpc_port: int | None = None
) -> Proc:
    """``python -m stratus.serving.server`` on ``port`` (a free one by default), pinned to the server CPU;
    also gRPC on ``grpc_port`` when given."""
    port = port or free_port()
    argv = [sys.executable, "-m", "stratus.serving.server", "--model", f"{MODEL_NAME}={model}"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--drain-s", str(drain_s)]
    if grpc_port is not None:
        argv += ["--grpc-port", str(grpc_port)]
    return Proc(name, pin(SERVER_CPU, argv), work / f"{name}.log", port)


def gateway_missing() -> str | None:
    """Why the gateway cannot be run (its module is not there yet), or None when it can."""
    try:
        found = importlib.util.find_spec(f"{GATEWAY_MODULE}.__main__") is not None
    except (ImportError, ValueError) as exc:  # a half-written package can fail to import
        return f"`{GATEWAY_MODULE}` cannot be imported: {exc}"
    return (
        None if found else f"`python -m {GATEWAY_MODULE}` does not exist yet (no {GATEWAY_MODULE}.__main__)"
    )


def gateway(work: Path, name: str, upstreams: list[int]) -> Proc:
    """``python -m stratus.serving.gateway --config FILE`` in front of ``upstreams``, latency policy."""
    port = free_port()
    config = {
        "host": "127.0.0.1",
        "port": port,
        "admin_token": "x",
        "sites": [
            {"name": chr(ord("a") + i), "url": f"http://127.0.0.1:{p}"} for i, p in enumerate(upstreams)
        ],
        "models": {MODEL_NAME: {"policy": "latency"}},
    }
    path = work / f"{name}.json"
    path.write_text(json.dumps(config, indent=2))
    argv = [sys.executable, "-m", GATEWAY_MODULE, "--config", str(path)]
    return Proc(name, pin(SERVER_CPU, argv), work / f"{name}.log", port)
