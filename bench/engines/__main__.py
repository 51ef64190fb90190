"""``python -m bench.engines``: the Ray executor against the local executor and bare Ray Jobs.

Starts a local two-node Ray cluster (``ray start`` head and worker, stopped by PID), times a no-op
step through each engine, then runs a 50-step fan-out through the runner on the Ray cluster and on the
local executor, and replaces the "Engines" section of ``bench/RESULTS.md``. About 10–20 minutes on a
busy 2-core machine, most of it Ray's own start-up and per-job cost.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from bench.engines.measure import fan_out, overhead
from bench.engines.report import TITLE, Report, render
from bench.results import RESULTS, machine, replace_section
from stratus.sandbox.ray_cluster import NodeSpec, start_ray_cluster, stop_ray_cluster


def _say(line: str) -> None:
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="timed no-op steps per engine")
    parser.add_argument("--fan-out", type=int, default=50, help="independent steps in the fan-out")
    parser.add_argument("--parallel", type=int, default=8, help="steps at once in the fan-out")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds each fan-out step waits")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs)")
    args = parser.parse_args()
    if args.steps < 1 or args.fan_out < 1 or args.parallel < 1:
        parser.error("--steps, --fan-out and --parallel must be at least 1")

    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="stratus-bench-engines-"))
    print(f"starting a two-node Ray cluster (scratch {folder}) …", flush=True)
    nodes = [NodeSpec(cpus=8, memory_gb=32), NodeSpec(cpus=8, memory_gb=32)]
    cluster = start_ray_cluster(folder / "cluster", nodes)
    try:
        print(f"per-step overhead, {args.steps} steps per engine …", flush=True)
        measured = overhead(
            cluster.address, folder / "overhead", args.steps, lambda line: print(line, flush=True)
        )
        runs = []
        for engine, compute in (
            ("Ray executor, 2 nodes", {"backend": "ray", "address": cluster.address}),
            ("local executor", {"backend": "local"}),
        ):
            print(f"fan-out of {args.fan_out} on the {engine} …", flush=True)
            run = fan_out(
                engine, compute, folder / engine.split()[0], args.fan_out, args.parallel, args.pause
            )
            print(f"  makespan {run.makespan_s:.1f} s, mean step {run.mean_step_s:.2f} s", flush=True)
            runs.append(run)
    finally:
        stop_ray_cluster(cluster)
        if args.keep:
            print(f"scratch folder kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    cluster_words = "local, 2 nodes (`ray start` head + worker, 8 logical CPUs each), Ray 2.60.0"
    text = render(Report(measured, runs, cluster_words, time.monotonic() - started, machine()))
    print()
    print(text)
    if not args.no_write:
        replace_section(args.results, TITLE, text)
        print(f"{TITLE} section replaced in {args.results}")


if __name__ == "__main__":
    main()
