"""One DDP case: the demo's ``fraud_torch:train_distributed`` step, as 1 rank or as 2 ranks in namespaces.

Each rank is the normal step worker (``python -m stratus.executors.worker REQUEST.json``) with the
``STRATUS_*`` variables the runner gives a distributed step, so the case measures the code the demo
runs. Two ranks each get a namespace of a :class:`DelayedNetwork` (also at 0 ms, so every 2-rank case
takes the same path through the forwarder), rank 0's link address as the coordinator and
``GLOO_SOCKET_IFNAME=eth0``. One rank runs without any network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.training.data import EXAMPLE
from stratus.processes import free_ports
from stratus.sandbox.wan import INTERFACE, DelayedNetwork, Host
from stratus.training import Cluster

__all__ = ["CaseResult", "Settings", "link_tx_bytes", "run_case", "run_single"]

PORT = 29500  # inside a namespace nothing else listens
RANK_WAIT_S = 300.0  # a rank still running after this is killed and the case fails


@dataclass(frozen=True)
class Settings:
    """The training every case does: the same steps and batch on every rank, whatever the mode."""

    steps: int
    batch_size: int
    sync_every: int
    lr: float
    hidden: int
    seed: int = 0
    timeout_s: float = 120.0  # STRATUS_DIST_TIMEOUT_S: rendezvous, each collective, teardown
    # lowcomm options for train() (overlap, pseudo_gradient_dtype) that the demo's step does not take:
    # when set, the bench's own schedule_step passes them on and runs the demo's step (schedules.py).
    train_options: tuple[tuple[str, Any], ...] = ()

    def params(self, mode: str) -> dict[str, Any]:
        """train_distributed's params for ``mode``."""
        return {
            "mode": mode,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "sync_every": self.sync_every,
            "lr": self.lr,
            "hidden": self.hidden,
            "seed": self.seed,
            "threads": 1,
            "parity_rows": 16,  # the model file's parity sample; export is not benchmarked
            **({"train_options": dict(self.train_options)} if self.train_options else {}),
        }


@dataclass
class CaseResult:
    """What one case measured; ``error`` set (and figures missing) when it failed or was skipped."""

    label: str
    ranks: int
    mode: str
    rtt_ms: float | None  # None: one rank, no network
    network: str = "namespaces"  # "none" (one rank), "namespaces" (a DelayedNetwork) or "loopback"
    sync_every: int | None = None  # K, lowcomm only
    steps_per_s: float | None = None  # per rank (rank 0's; every rank takes the same steps)
    final_loss: float | None = None  # mean training loss of the last 16 steps, averaged over ranks
    auc: float | None = None  # rank 0's ROC-AUC on the test split
    syncs: int | None = None
    bytes_estimate: int | None = None  # what train() counts rank 0 sending in collectives
    link_bytes: list[int] = field(default_factory=list)  # bytes each rank's eth0 sent (frames, all traffic)
    wall_s: float | None = None  # start of the workers to the last exit (imports, data load, evaluation)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.steps_per_s is not None


def link_tx_bytes(host: Host) -> int:
    """Bytes ``host`` has sent on its link interface so far (the kernel's counter in its namespace)."""
    shown = subprocess.run(
        ["ip", "-n", host.name, "-j", "-s", "link", "show", "dev", INTERFACE],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(shown.stdout)[0]["stats64"]["tx"]["bytes"])


def _request(workdir: Path, features: Path, params: dict[str, Any]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    wrapped = "train_options" in params  # the demo's step with train() options it does not take
    request = {
        "step": "train_distributed",
        "run_id": "bench-training",
        "entrypoint": "schedule_step:train_distributed" if wrapped else "fraud_torch:train_distributed",
        "python_path": [str(EXAMPLE), *([str(Path(__file__).parent)] if wrapped else [])],
        "inputs": {"preprocess.features": str(features)},
        "outputs": {"model": str(workdir / "out" / "model.pt")},
        "workdir": str(workdir),
        "params": params,
        "result_path": str(workdir / "result.json"),
    }
    path = workdir / "request.json"
    path.write_text(json.dumps(request))
    return path


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
    return env | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"} | extra


def _finish(
    result: CaseResult, processes: Sequence[subprocess.Popen[bytes]], workdirs: Sequence[Path], started: float
) -> None:
    """Wait for every rank; fill ``result`` from rank 0's metrics, or its error with the logs' tails."""
    deadline = started + RANK_WAIT_S
    for process in processes:
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    result.wall_s = time.monotonic() - started
    codes = [p.returncode for p in processes]
    if codes != [0] * len(processes):
        tails = []
        for rank, workdir in enumerate(workdirs):
            log = workdir / "worker.log"
            lines = log.read_text(errors="replace").splitlines()[-8:] if log.exists() else ["(no log)"]
            tails.append(f"rank {rank} (exit {codes[rank]}): " + " | ".join(lines))
        result.error = "; ".join(tails)
        return
    metrics = json.loads((workdirs[0] / "result.json").read_text())["metrics"]
    result.steps_per_s = float(metrics["steps_per_s"])
    result.final_loss = float(metrics["final_loss"])
    result.auc = float(metrics["auc"])
    result.syncs = int(metrics["syncs"])
    result.bytes_estimate = int(metrics["bytes_communicated_estimate"])


def run_single(folder: Path, features: Path, settings: Settings) -> CaseResult:
    """One rank, no process group, no network: the throughput a rank has when it talks to no one."""
    result = CaseResult("1 rank", 1, "local", None, network="none")
    workdir = folder / "single"
    request = _request(workdir, features, settings.params("sync"))
    started = time.monotonic()
    with open(workdir / "worker.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stratus.executors.worker", str(request)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_environment({}),
        )
    _finish(result, [process], [workdir], started)
    return result


def run_case(
    net: DelayedNetwork | None, folder: Path, features: Path, settings: Settings, mode: str, label: str
) -> CaseResult:
    """Two ranks of ``mode`` (``sync`` or ``lowcomm``), rank r in ``net.hosts[r]``; on loopback when
    ``net`` is None (a machine that cannot build namespaces)."""
    rtt_ms = 2 * net.one_way_delay_ms if net is not None else 0.0
    result = CaseResult(label, 2, mode, rtt_ms, network="namespaces" if net is not None else "loopback")
    result.sync_every = settings.sync_every if mode == "lowcomm" else None
    sites = ("site-a", "site-b")
    if net is not None:
        hosts = net.hosts[:2]
        coordinator, interface = f"{hosts[0].address}:{PORT}", INTERFACE
        before = [link_tx_bytes(h) for h in hosts]
    else:
        coordinator, interface = f"127.0.0.1:{free_ports(1)[0]}", "lo"
    processes, workdirs = [], []
    started = time.monotonic()
    for rank in range(2):
        cluster = Cluster(rank, 2, coordinator, sites, sites[rank], settings.timeout_s)
        workdir = folder / f"{label.replace(' ', '-')}-rank{rank}"
        request = _request(workdir, features, settings.params(mode))
        command = [sys.executable, "-m", "stratus.executors.worker", str(request)]
        env = _environment({**cluster.env(), "GLOO_SOCKET_IFNAME": interface})
        with open(workdir / "worker.log", "wb") as log:
            options: dict[str, Any] = {
                "stdout": log,
                "stderr": subprocess.STDOUT,
                "stdin": subprocess.DEVNULL,
                "env": env,
            }
            if net is not None:
                processes.append(net.popen(hosts[rank], command, **options))
            else:
                processes.append(subprocess.Popen(command, **options))
        workdirs.append(workdir)
    _finish(result, processes, workdirs, started)
    if net is not None:
        result.link_bytes = [link_tx_bytes(h) - b for h, b in zip(hosts, before, strict=True)]
    return result
