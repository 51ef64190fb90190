"""``python -m bench.training.schedules``: which part of the lowcomm changes buys the throughput.

Sync DDP at 0 ms, then lowcomm K=16 at 40 ms RTT in four schedules (blocking or overlapped exchange,
float32 or bfloat16 pseudo-gradients), alternating in each run so that every ratio compares cases
under the same load. Prints a markdown table (medians, each run's ratio, ROC-AUC, bytes) and writes
nothing: the main bench (``python -m bench.training``) measures the defaults and owns RESULTS.md.
Needs root for the namespaces, like the main bench.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from bench.training.data import make_dataset
from bench.training.ddp import CaseResult, Settings, run_case
from stratus.sandbox.wan import DelayedNetwork, wan_unavailable_reason

SCHEDULES = {
    "blocking, float32 (before)": (("overlap", False), ("pseudo_gradient_dtype", "float32")),
    "blocking, bfloat16": (("overlap", False), ("pseudo_gradient_dtype", "bfloat16")),
    "overlapped, float32": (("overlap", True), ("pseudo_gradient_dtype", "float32")),
    "overlapped, bfloat16 (default)": (("overlap", True), ("pseudo_gradient_dtype", "bfloat16")),
}
ANCHOR = "sync DDP, 0 ms"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.training.schedules", description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--sync-every", type=int, default=16)
    parser.add_argument("--rtt-ms", type=float, default=40.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    reason = wan_unavailable_reason()
    if reason is not None:
        parser.error(f"needs a delayed network: {reason}")
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-schedules-"))
    settings = Settings(steps=args.steps, batch_size=512, sync_every=args.sync_every, lr=1e-3, hidden=64)
    results: dict[str, list[CaseResult]] = {ANCHOR: [], **{name: [] for name in SCHEDULES}}
    loads = []
    try:
        features = make_dataset(work / "data", args.rows).features
        for rep in range(args.repeats):
            loads.append(os.getloadavg()[0])
            with DelayedNetwork(hosts=2, one_way_delay_ms=0.0, prefix="strsched") as net:
                results[ANCHOR].append(run_case(net, work / f"run{rep}", features, settings, "sync", "sync"))
            with DelayedNetwork(hosts=2, one_way_delay_ms=args.rtt_ms / 2, prefix="strsched") as net:
                for i, (name, options) in enumerate(SCHEDULES.items()):
                    case = dataclasses.replace(settings, train_options=options)
                    results[name].append(
                        run_case(net, work / f"run{rep}", features, case, "lowcomm", f"s{i}")
                    )
            rates = {name: f"{runs[-1].steps_per_s or 0:.1f}" for name, runs in results.items()}
            print(f"run {rep + 1} of {args.repeats}, load {loads[-1]:.1f}: {rates}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(_table(results, args.sync_every, args.rtt_ms, loads))


def _table(results: dict[str, list[CaseResult]], k: int, rtt_ms: float, loads: list[float]) -> str:
    lines = [
        f"lowcomm K={k} at {rtt_ms:g} ms RTT against sync DDP at 0 ms; load average (1 min) as each run "
        f"started: {', '.join(f'{x:.1f}' for x in loads)}.",
        "",
        "| case | steps/s (median) | of sync at 0 ms: median (each run) | ROC-AUC | MB sent per rank "
        "(estimate) | MB on the link, rank 0 / rank 1 |",
        "|---|--:|---|--:|--:|--:|",
    ]
    anchor = results[ANCHOR]
    for name, runs in results.items():
        ok = [r for r in runs if r.ok and r.steps_per_s is not None]
        if not ok:
            lines.append(f"| {name} | failed: {(runs[0].error or '')[:300].replace('|', '/')} |||||")
            continue
        ratios = [
            b.steps_per_s / a.steps_per_s
            for a, b in zip(anchor, runs, strict=True)
            if a.ok and b.ok and a.steps_per_s and b.steps_per_s is not None
        ]
        each = ", ".join(f"{x:.0%}" for x in ratios)
        link = " / ".join(f"{statistics.median(r.link_bytes[i] for r in ok) / 1e6:.2f}" for i in range(2))
        lines.append(
            f"| {name} | {statistics.median(r.steps_per_s or 0.0 for r in ok):,.1f} "
            f"| {statistics.median(ratios):.0%} ({each}) | {ok[0].auc:.4f} "
            f"| {(ok[0].bytes_estimate or 0) / 1e6:.2f} | {link} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
