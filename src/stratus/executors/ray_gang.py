"""Inside a Ray cluster: the ranks of one distributed step, as one job holding a placement group.

``python -m stratus.executors.ray_gang GANG.json`` is the entrypoint of the Ray job that
:class:`~stratus.executors.ray_jobs.RayExecutor` submits for a distributed step whose ranks are all at
one Ray site. It reserves one bundle per rank (``STRICT_SPREAD``, one rank per node, when the cluster
has at least as many nodes as ranks; else ``SPREAD``, and it says which), starts an actor in each
bundle, points every rank at rank 0's node for the rendezvous (``STRATUS_COORDINATOR``, the same
contract as ranks started by the runner), and runs the ordinary worker in each. Each rank's output is
relayed with a ``[rank N]`` prefix, and the job's log ends with one ``::stratus-rank`` line per rank
(its exit code, or that its node was lost), which the runner splits back into per-rank logs and results.
When one rank fails, the others are stopped, so no rank waits in a collective for a peer that is gone.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stratus.step import ENV_COORDINATOR

__all__ = ["MARKER", "main"]

#: Prefix of the per-rank outcome lines: ``::stratus-rank N exit CODE`` or ``::stratus-rank N lost WHY``.
MARKER = "::stratus-rank"
_POLL_S = 0.2
_STOPPED = -15  # a rank stopped because a peer failed: reported as SIGTERM, the runner reads "stopped"


class _Rank:
    """One rank: where it runs, and its worker process with the output kept for the driver to relay."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None

    def where(self) -> tuple[str, str, int]:
        """This node's id and IP, and a port free on it (for rank 0: the rendezvous)."""
        ray = _ray()
        ip = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind((ip, 0))
            port = int(s.getsockname()[1])
        return ray.get_runtime_context().get_node_id(), ip, port

    def run(self, request_file: str, env: Mapping[str, str]) -> int:
        """Run the worker on ``request_file`` with the rank's environment; its exit code."""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "stratus.executors.worker", request_file],
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._lock:
                self._lines.append(line.rstrip("\n"))
        return self._proc.wait()

    def read(self) -> list[str]:
        """The output lines since the last call."""
        with self._lock:
            lines, self._lines = self._lines, []
        return lines

    def stop(self) -> None:
        """Stop the rank's worker (its whole process group)."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, 15)


def main(argv: list[str] | None = None) -> int:
    """Run every rank described in the gang file; 0 when all succeeded."""
    ray = _ray()
    # ``ray.util.placement_group`` is also the name of a function there: import the modules by name.
    placement_group = importlib.import_module("ray.util.placement_group").placement_group
    strategies = importlib.import_module("ray.util.scheduling_strategies")

    args = sys.argv[1:] if argv is None else argv
    gang: dict[str, Any] = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    ranks: list[dict[str, Any]] = gang["ranks"]
    bundle: dict[str, float] = gang["bundle"]
    world = len(ranks)
    ray.init(log_to_driver=False)  # the ranks' output is relayed below, prefixed, not Ray's way
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    strategy = "STRICT_SPREAD" if len(nodes) >= world else "SPREAD"
    why = "one rank per node" if strategy == "STRICT_SPREAD" else f"only {len(nodes)} node(s) for {world}"
    print(f"[gang] placement group: {world} bundles of {bundle}, {strategy} ({why})", flush=True)
    group = placement_group([dict(bundle) for _ in range(world)], strategy=strategy)
    ray.get(group.ready())
    # By reference (this module, importable on every node), not pickled by value from ``__main__``.
    rank_actor = ray.remote(importlib.import_module("stratus.executors.ray_gang")._Rank)
    actors: list[Any] = [
        rank_actor.options(
            num_cpus=0,  # the bundle holds the rank's resources; the actor only occupies it
            max_concurrency=4,  # run, read and stop are called concurrently
            scheduling_strategy=strategies.PlacementGroupSchedulingStrategy(
                group, placement_group_bundle_index=i
            ),
        ).remote()
        for i in range(world)
    ]
    where = ray.get([a.where.remote() for a in actors])
    coordinator = f"{where[0][1]}:{where[0][2]}"
    for i, (node, ip, _) in enumerate(where):
        print(f"[rank {i}] on node {node} ({ip}); coordinator {coordinator}", flush=True)
    runs = {
        i: actor.run.remote(rank["request"], {**rank["env"], ENV_COORDINATOR: coordinator})
        for i, (actor, rank) in enumerate(zip(actors, ranks, strict=True))
    }
    outcomes: dict[int, str] = {}
    stopping = False
    while len(outcomes) < world:
        _relay(ray, actors, outcomes)
        ready, _ = ray.wait([r for i, r in runs.items() if i not in outcomes], timeout=_POLL_S)
        for i, ref in runs.items():
            if ref not in ready:
                continue
            try:
                code = int(ray.get(ref))
                outcomes[i] = f"exit {_STOPPED if stopping and code != 0 else code}"
            except ray.exceptions.RayActorError as exc:  # its node died (or the actor with it)
                outcomes[i] = f"lost {str(exc).splitlines()[0]}"
            if not outcomes[i].startswith("exit 0") and not stopping:
                stopping = True
                for j, actor in enumerate(actors):
                    if j not in outcomes:
                        actor.stop.remote()
    _relay(ray, actors, outcomes)
    for i in range(world):
        print(f"{MARKER} {i} {outcomes[i]}", flush=True)
    return 0 if all(o == "exit 0" for o in outcomes.values()) else 1


def _ray() -> Any:
    """Ray, untyped (it ships no stubs); imported only inside the cluster's job."""
    return importlib.import_module("ray")


def _relay(ray: Any, actors: list[Any], outcomes: Mapping[int, str]) -> None:
    """Print every live rank's new output lines, prefixed with its rank."""
    for i, actor in enumerate(actors):
        if outcomes.get(i, "").startswith("lost"):
            continue
        try:
            lines = ray.get(actor.read.remote(), timeout=10)
        except Exception:  # a rank whose node just died: its outcome says so
            continue
        for line in lines:
            print(f"[rank {i}] {line}", flush=True)
    time.sleep(0)


if __name__ == "__main__":
    sys.exit(main())
