"""``python -m bench.training``: 1 rank, 2-rank sync DDP and 2-rank low-communication training over a
link with 0, 20 and 40 ms round-trip time, and Flower's seconds per round against local training.

Every DDP case trains the fraud demo's MLP (``fraud_torch:train_distributed``, run by the step worker) on
the same features for the same steps; each of two ranks runs in its own namespace of a
:class:`~stratus.sandbox.wan.DelayedNetwork` (also at 0 ms), one rank without any network. The anchor,
sync DDP at 0 ms, runs in the same run, and the issue's target (lowcomm at 40 ms keeps ≥ 70% of its
steps/s at equal ROC-AUC, ±0.01) is judged for each K. The "Training" section of ``bench/RESULTS.md`` is
replaced by this run's. Default run: about 7 minutes on 2 cores; ``--quick`` (about 1.5 minutes) checks
that everything works and writes nothing. Needs root for the namespaces; without, the 0 ms cases run on
loopback and the delayed ones are reported as skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.training.data import make_dataset
from bench.training.ddp import CaseResult, Settings, run_case, run_single
from bench.training.flower import FlowerResult, run_flower
from bench.training.report import (
    LOOPBACK,
    TARGET_RTT_MS,
    Report,
    lowcomm_label,
    render,
    replace_section,
    sync_label,
    verdicts,
)
from stratus.sandbox.wan import DelayedNetwork, wan_unavailable_reason

RESULTS = Path(__file__).resolve().parents[1] / "RESULTS.md"
GPU_NOTE = (
    "this task was not lent a GPU machine (the device tool's status: not drawn), so no seconds per "
    "epoch on a GPU are recorded; every figure here is CPU."
)


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


@contextlib.contextmanager
def _network(rtt_ms: float, available: bool) -> Iterator[DelayedNetwork | None]:
    """Two namespaces with half the RTT as one-way delay; None (loopback) when namespaces are impossible."""
    if not available:
        yield None
        return
    with DelayedNetwork(hosts=2, one_way_delay_ms=rtt_ms / 2, prefix="strbench") as net:
        yield net


def _show(result: CaseResult) -> None:
    if result.ok:
        print(
            f"  {result.label}: {result.steps_per_s:,.1f} steps/s, loss {result.final_loss:.4f}, "
            f"AUC {result.auc:.4f}, {result.syncs} exchanges, {(result.bytes_estimate or 0) / 1e6:.2f} MB "
            f"sent (estimate), {sum(result.link_bytes) / 1e6:.2f} MB on the link, wall {result.wall_s:.1f} s",
            flush=True,
        )
    else:
        print(f"  {result.label}: FAILED: {result.error}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000, help="transactions to make (the demo's 300k)")
    parser.add_argument("--steps", type=int, default=600, help="training steps per case (the demo's 600)")
    parser.add_argument("--batch-size", type=int, default=512, help="rows per step per rank")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--sync-every", default="16,32", help="lowcomm K values, comma-separated")
    parser.add_argument("--rtt-ms", default="0,20,40", help="link round-trip times, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (sync at RTT > 0: one)")
    parser.add_argument("--flower-rounds", type=int, default=3)
    parser.add_argument("--local-epochs", type=int, default=5, help="Flower local epochs per round")
    parser.add_argument("--flower-rtt-ms", default="0,40", help="Flower link round-trip times")
    parser.add_argument("--no-flower", action="store_true")
    parser.add_argument(
        "--no-loopback",
        action="store_true",
        help="skip the reference row: sync DDP on loopback, no forwarder",
    )
    parser.add_argument("--quick", action="store_true", help="small and short; implies --no-write")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, data, models)")
    if "--quick" in sys.argv[1:]:  # defaults only: an explicit --steps etc. still wins
        parser.set_defaults(
            rows=60_000,
            steps=120,
            repeats=1,
            sync_every="16",
            rtt_ms="0,40",
            flower_rounds=1,
            local_epochs=1,
            flower_rtt_ms="40",
            no_write=True,
            no_loopback=True,
        )
    args = parser.parse_args()
    rtts, ks, flower_rtts = _floats(args.rtt_ms), _ints(args.sync_every), _floats(args.flower_rtt_ms)
    if 0.0 not in rtts:
        parser.error("--rtt-ms must include 0: sync DDP at 0 ms is the anchor")
    if args.repeats < 1 or not ks or min(ks) < 1 or args.steps < 1:
        parser.error("--repeats, --steps and every --sync-every must be at least 1")

    started = time.monotonic()
    load_before = os.getloadavg()
    print(f"load average (1, 5, 15 min) at the start: {', '.join(f'{x:.2f}' for x in load_before)}")
    run_loads: list[float] = []  # 1-minute load average as each run of the compared cases starts
    wan_reason = wan_unavailable_reason()
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-training-"))
    settings = Settings(
        steps=args.steps, batch_size=args.batch_size, sync_every=ks[0], lr=args.lr, hidden=args.hidden
    )
    cases: dict[str, list[CaseResult]] = {"1 rank": []}
    loopback = wan_reason is None and not args.no_loopback  # without namespaces, 0 ms is loopback anyway
    if loopback:
        cases[LOOPBACK] = []
    for rtt in rtts:
        cases[sync_label(rtt)] = []
        cases.update({lowcomm_label(k, rtt): [] for k in ks})
    skipped: dict[str, str] = {}
    if wan_reason is not None:
        for rtt in (r for r in rtts if r > 0):
            for label in [sync_label(rtt), *(lowcomm_label(k, rtt) for k in ks)]:
                skipped[label] = f"no delayed network: {wan_reason}"
                del cases[label]
    flower: list[FlowerResult] = []
    flower_skipped: dict[str, str] = {}
    try:
        print(f"making {args.rows:,} transactions and their features …", flush=True)
        dataset = make_dataset(work / "data", args.rows)
        target = TARGET_RTT_MS if lowcomm_label(ks[0], TARGET_RTT_MS) in cases else None

        def run_at(rtt: float, todo: list[tuple[str, int | None]], folder: Path) -> None:
            """Run ``todo`` ((mode, K) pairs) in order on one network of ``rtt`` ms."""
            with _network(rtt, wan_reason is None) as net:
                for mode, k in todo:
                    label = sync_label(rtt) if k is None else lowcomm_label(k, rtt)
                    case_settings = settings if k is None else dataclasses.replace(settings, sync_every=k)
                    result = run_case(net, folder, dataset.features, case_settings, mode, label)
                    cases[label].append(result)
                    _show(result)

        # The cases the target compares are repeated, each run's lowcomm right after its sync at 0 ms, so
        # a pair sees the same load from the machine's other users; the rest run once.
        for rep in range(args.repeats):
            run_loads.append(os.getloadavg()[0])
            print(
                f"DDP, the compared cases, run {rep + 1} of {args.repeats}, load {run_loads[-1]:.2f}",
                flush=True,
            )
            folder = work / f"run{rep}"
            result = run_single(folder, dataset.features, settings)
            cases["1 rank"].append(result)
            _show(result)
            if loopback:
                result = run_case(None, folder, dataset.features, settings, "sync", LOOPBACK)
                cases[LOOPBACK].append(result)
                _show(result)
            run_at(0.0, [("sync", None)], folder)
            if target is not None:
                run_at(target, [("lowcomm", k) for k in ks], folder)
        print("DDP, the other cases (one run each)", flush=True)
        for rtt in rtts:
            todo: list[tuple[str, int | None]] = [("sync", None)] if rtt != 0 else []
            todo += [("lowcomm", k) for k in ks] if rtt != target else []
            if todo and sync_label(rtt) in cases:
                run_at(rtt, todo, work / "once")
        for rtt in [] if args.no_flower else flower_rtts:
            label = "loopback" if wan_reason is not None else f"RTT {rtt:g} ms"
            if wan_reason is not None and rtt > 0:
                flower_skipped[f"RTT {rtt:g} ms"] = f"no delayed network: {wan_reason}"
                continue
            print(f"Flower, {label}: {args.flower_rounds} rounds × {args.local_epochs} epochs", flush=True)
            one_way = None if wan_reason is not None else rtt / 2
            outcome = run_flower(
                work / "flower",
                dataset.sites,
                rounds=args.flower_rounds,
                local_epochs=args.local_epochs,
                one_way_delay_ms=one_way,
                label=label,
            )
            flower.append(outcome)
            if outcome.error:
                print(f"  FAILED: {outcome.error}", flush=True)
            else:
                print(
                    f"  {outcome.seconds_per_round:.2f} s/round, wall {outcome.wall_s:.1f} s, baseline "
                    f"{outcome.baseline_s:.2f} s; AUC {outcome.auc:.4f} vs {outcome.baseline_auc:.4f}",
                    flush=True,
                )
    finally:
        if args.keep:
            print(f"scratch folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report = Report(
        dataset=dataset,
        settings=settings,
        sync_every=ks,
        repeats=args.repeats,
        cases=cases,
        skipped=skipped,
        flower=flower,
        flower_skipped=flower_skipped,
        load_before=load_before,
        load_after=os.getloadavg(),
        run_loads=run_loads,
        wan_reason=wan_reason,
        gpu_note=GPU_NOTE,
        elapsed_s=time.monotonic() - started,
        quick=args.quick,
    )
    text = render(report)
    print()
    print(text)
    for verdict in verdicts(report):
        state = "not judged" if verdict.ratio is None else ("PASS" if verdict.passed else "FAIL")
        print(f"target, K={verdict.sync_every}: {state}")
    if not args.no_write:
        replace_section(args.results, text)
        print(f"wrote the Training section of {args.results}")


if __name__ == "__main__":
    main()
