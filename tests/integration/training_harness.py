"""Harness for the distributed-training tests: ranks started the way the runner starts them, and a tiny step.

Each rank is ``python -m stratus.executors.worker REQUEST.json`` (the normal step worker) with the
``STRATUS_*`` variables of :meth:`Cluster.env`, one OpenMP thread, and this folder on the step's
``sys.path``, so ``training_harness:tiny_step`` is imported by the worker exactly as a pipeline's step is.

``tiny_step`` learns a fixed linear rule with a small MLP. Every rank draws its initial weights from a
different seed, so identical parameters at the end prove that rank 0's were broadcast, and records a
digest of its parameters after every step: equal digests across ranks mean bit-identical models.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stratus.processes import free_ports
from stratus.step import StepContext
from stratus.training import Cluster, process_group, train
from stratus.training.data import batches, shard

__all__ = ["Rank", "launch", "tiny_step", "wait_for"]

HERE = Path(__file__).resolve().parent
FEATURES = 8


@dataclass
class Rank:
    """One started rank: its process, where its log, result and outputs go."""

    rank: int
    process: subprocess.Popen[bytes]
    log: Path
    workdir: Path

    @property
    def result_path(self) -> Path:
        return self.workdir / "result.json"

    def output(self, name: str) -> Path:
        """Where the step wrote output ``name``."""
        return self.workdir / "out" / name

    def wait(self, timeout_s: float) -> int:
        """The exit code; a rank still running after ``timeout_s`` is killed and the test fails."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            log = self.log_text()
            raise AssertionError(f"rank {self.rank} hung past {timeout_s} s; log:\n{log}") from None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def result(self) -> dict[str, Any]:
        """The worker's result.json: ``ok``, ``metrics``, ``error``."""
        data: dict[str, Any] = json.loads(self.result_path.read_text())
        return data

    def record(self) -> dict[str, Any]:
        """What tiny_step wrote to its ``record`` output: per mode, losses, stats and step digests."""
        data: dict[str, Any] = json.loads(self.output("record").read_text())
        return data


def launch(
    folder: Path,
    params: dict[str, Any],
    *,
    world_size: int = 2,
    ranks: list[int] | None = None,
    timeout_s: float = 20.0,
    entrypoint: str = "training_harness:tiny_step",
    python_path: list[Path] | None = None,
    inputs: dict[str, Path] | None = None,
    outputs: Sequence[str] = ("record",),
    gated: bool = True,
) -> list[Rank]:
    """Start ``ranks`` (default all) of a ``world_size`` cluster on loopback, each as a step worker.

    ``gated`` (tiny_step only): return once every rank has started and then release them together.
    """
    (port,) = free_ports(1)
    sites = tuple(f"site-{chr(ord('a') + r)}" for r in range(world_size))
    started = []
    for r in range(world_size) if ranks is None else ranks:
        cluster = Cluster(r, world_size, f"127.0.0.1:{port}", sites, sites[r], timeout_s)
        workdir = folder / f"rank{r}"
        workdir.mkdir(parents=True, exist_ok=True)
        request = {
            "step": entrypoint.rpartition(":")[2],
            "run_id": "test",
            "entrypoint": entrypoint,
            "python_path": [str(p) for p in (python_path or [HERE])],
            "inputs": {name: str(p) for name, p in (inputs or {}).items()},
            "outputs": {name: str(workdir / "out" / name) for name in outputs},
            "workdir": str(workdir),
            "params": params,
            "result_path": str(workdir / "result.json"),
        }
        request_path = workdir / "request.json"
        request_path.write_text(json.dumps(request))
        env = {**os.environ, **cluster.env(), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        log = workdir / "worker.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "stratus.executors.worker", str(request_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        started.append(Rank(r, process, log, workdir))
    # Start-up (importing torch) takes seconds on a busy machine and differs between ranks; release them
    # together so the small timeouts the tests use measure the rendezvous, not the imports.
    if gated:
        for rank in started:
            wait_for(rank.workdir / "ready", started, 120.0)
        (folder / "go").write_text("")
    return started


def wait_for(path: Path, ranks: list[Rank], timeout_s: float) -> None:
    """Until ``path`` exists; fails early, with the logs, if a rank exits first."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        for r in ranks:
            if r.process.poll() is not None:
                raise AssertionError(f"rank {r.rank} exited ({r.process.returncode}) early:\n{r.log_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not appear within {timeout_s} s")
        time.sleep(0.05)


def _dataset(seed: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    w = np.linspace(-1.0, 1.0, FEATURES, dtype=np.float32)
    return x, (x @ w + 0.1 * rng.normal(size=rows)).astype(np.float32)[:, None]


def _digest(model: nn.Module) -> str:
    vector = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    return hashlib.sha256(vector.numpy().tobytes()).hexdigest()[:16]


def tiny_step(ctx: StepContext) -> dict[str, Any]:
    """Train a tiny MLP once per mode in ``params["modes"]``, all in one process group (one start-up).

    Records, per mode, the evaluation loss before and after, the TrainStats, and (step, synced, digest)
    after every step. ``marker_after`` writes ``workdir/started`` after that step of the first mode, for
    tests that interfere with a rank mid-training.
    """
    (ctx.workdir / "ready").write_text("")
    go = ctx.workdir.parent / "go"
    deadline = time.monotonic() + 120.0
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    cluster = Cluster.from_env()
    with process_group(cluster) if cluster else contextlib.nullcontext():
        records = {mode: _train_tiny(ctx, cluster, mode) for mode in ctx.params["modes"]}
    ctx.output("record").write_text(json.dumps(records))
    return {mode: r["after"] for mode, r in records.items()}


def _train_tiny(ctx: StepContext, cluster: Cluster | None, mode: str) -> dict[str, Any]:
    rank = cluster.rank if cluster else 0
    marker_after = int(ctx.params.get("marker_after", -1))
    x, y = _dataset(seed=0, rows=4096)
    mine = shard(len(x), cluster)
    torch.manual_seed(100 + rank)  # different on purpose: training must start from rank 0's weights
    model = nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU(), nn.Linear(16, 1))
    x_eval, y_eval = torch.from_numpy(x[:512]), torch.from_numpy(y[:512])
    loss_fn = nn.MSELoss()
    digests: list[tuple[int, bool, str]] = []

    def on_step(step: int, synced: bool) -> None:
        digests.append((step, synced, _digest(model)))
        if step == marker_after:
            (ctx.workdir / "started").write_text("")
        time.sleep(float(ctx.params.get("step_sleep_s", 0.0)))

    with torch.no_grad():
        before = float(loss_fn(model(x_eval), y_eval))  # this rank's own initialisation
    stats = train(
        model,
        loss_fn,
        batches(x[mine], y[mine], 64, seed=rank),
        mode=mode,
        steps=int(ctx.params["steps"][mode]),
        sync_every=int(ctx.params.get("sync_every", 8)),
        overlap=bool(ctx.params.get("overlap", True)),
        pseudo_gradient_dtype=ctx.params.get("pseudo_gradient_dtype", "bfloat16"),
        lr=0.01,
        cluster=cluster,
        on_step=on_step,
    )
    with torch.no_grad():
        after = float(loss_fn(model(x_eval), y_eval))
    return {"before": before, "after": after, "stats": stats.__dict__, "digests": digests}
