"""The peers we measure against: MLServer 1.7.1 (in a venv of its own) and HAProxy (Debian), plus wrk.

Both are installed by the bench when missing, so ``python -m bench.serving`` is the only step: wrk and
HAProxy with ``apt-get`` (the bench machines run as root), MLServer from PyPI into
``.stratus/bench-peers/mlserver-1.7.1`` (gitignored), next to ONNX Runtime of the same version as ours so
that both servers run the same kernels. MLServer gets ``parallel_workers: 0`` (its default of 1 crashes
with uvloop >= 0.22, the field notes say) and ``debug: false`` (no access log line per request, like ours).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from string import Template

from bench.serving.model import MODEL_NAME
from bench.serving.processes import SERVER_CPU, Proc, free_port, pin

__all__ = [
    "HAPROXY_DEFAULT",
    "HAPROXY_TUNED",
    "MLSERVER_VERSION",
    "ensure_mlserver",
    "ensure_tools",
    "haproxy",
    "haproxy_version",
    "mlserver",
    "mlserver_grpc_port",
]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MLSERVER_VERSION = "1.7.1"
PEERS = REPO / ".stratus" / "bench-peers"
# HAProxy's defaults written out: 3 retries, on connection failures only, on the same server.
HAPROXY_DEFAULT = ["retries 3"]
# What the field notes found zero-error failover needs: retry POSTs on any retryable error, elsewhere.
HAPROXY_TUNED = [
    "retries 3",
    "retry-on all-retryable-errors",
    "option http-buffer-request",
    "option redispatch",
]
HEALTH = "check inter 250ms fall 2 rise 1"


def ensure_tools() -> None:
    """apt-get install wrk and haproxy when either is missing (an ``apt-get update`` first if needed)."""
    missing = [tool for tool in ("wrk", "haproxy") if shutil.which(tool) is None]
    if not missing:
        return
    print(f"installing {' '.join(missing)} with apt-get …", flush=True)
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, capture_output=True, text=True).returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, check=False)
        done = subprocess.run(install, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(install)}` failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def haproxy_version() -> str:
    """``2.6.12-1+deb12u3``-style version of the installed HAProxy."""
    out = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=False).stdout
    words = out.split()
    return words[2] if len(words) > 2 else "unknown"


def ensure_mlserver() -> Path:
    """The venv's ``mlserver`` executable, creating the venv from PyPI on first use (about 30 s)."""
    venv = PEERS / f"mlserver-{MLSERVER_VERSION}"
    exe = venv / "bin" / "mlserver"
    stamp = venv / ".installed"
    ort = version("onnxruntime")
    if stamp.is_file() and stamp.read_text() == ort and exe.is_file():
        return exe
    print(f"creating {venv} (mlserver=={MLSERVER_VERSION}, onnxruntime=={ort}) …", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    PEERS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    done = subprocess.run(
        [*pip, f"mlserver=={MLSERVER_VERSION}", f"onnxruntime=={ort}"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install mlserver=={MLSERVER_VERSION} failed:\n{done.stderr[-3000:]}")
    stamp.write_text(ort)
    return exe


def mlserver(exe: Path, work: Path, model: Path, threads: int) -> Proc:
    """MLServer serving ``model`` with our ONNX runtime class, on free ports, pinned to the server CPU."""
    root = work / "mlserver"
    model_dir = root / MODEL_NAME
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "mlserver_onnx.py", root / "mlserver_onnx.py")
    port = free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": 0,
        "debug": False,
        "load_models_at_startup": True,
    }
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    model_settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_onnx.OnnxRuntime",
        "parameters": {"uri": str(model), "extra": {"intra_op_threads": threads}},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    argv = pin(SERVER_CPU, [str(exe), "start", str(root)])
    return Proc("MLServer", argv, work / "mlserver.log", port, env={"PYTHONPATH": str(root)})


def mlserver_grpc_port(work: Path) -> int:
    """The gRPC port :func:`mlserver` wrote into MLServer's settings."""
    settings = json.loads((work / "mlserver" / "settings.json").read_text())
    return int(settings["grpc_port"])


def haproxy(work: Path, name: str, upstreams: list[int], retry_lines: list[str]) -> Proc:
    """HAProxy (foreground, one thread) on a free port in front of ``upstreams``, pinned to the server CPU."""
    port = free_port()
    text = Template((HERE / "haproxy.cfg").read_text()).substitute(
        port=port,
        retry_lines="\n".join(f"    {line}" for line in retry_lines),
        server_lines="\n".join(f"    server s{i} 127.0.0.1:{p} {HEALTH}" for i, p in enumerate(upstreams)),
    )
    cfg = work / f"{name}.cfg"
    cfg.write_text(text)
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy rejects {cfg}:\n{check.stdout}{check.stderr}")
    return Proc(name, pin(SERVER_CPU, ["haproxy", "-db", "-f", str(cfg)]), work / f"{name}.log", port)
