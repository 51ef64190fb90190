"""The "Training" section of RESULTS.md: machine, settings, the DDP table, the targets, the Flower table.

Like bench/serving, this bench replaces its own section (every earlier "## Training" section) and appends
the new one at the end, so RESULTS.md holds one set of training figures, all from one run on one machine.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench import results as results_lib
from bench.results import machine, revision
from bench.training.data import SEED, TEST_FRACTION, Dataset
from bench.training.ddp import CaseResult, Settings
from bench.training.flower import FlowerResult

__all__ = [
    "AUC_TOLERANCE",
    "LOOPBACK",
    "TARGET_RATIO",
    "TARGET_RTT_MS",
    "Report",
    "Verdict",
    "render",
    "replace_section",
    "verdicts",
]

LOWCOMM_SCHEDULE = (
    "**overlapped** (each all-reduce runs during the next K steps and reaches the shared parameters "
    "one outer step late; each rank starts the next window from its own look-ahead, "
    "`stratus.training.outer`) and **bfloat16 pseudo-gradients** on the wire (float32 before this run)"
)
LOOPBACK = "sync, loopback"  # the reference row: two ranks in one namespace, no forwarder
TARGET_RTT_MS = 40.0  # the "40 ms link delay", read as round-trip time
TARGET_RATIO = 0.70  # lowcomm at 40 ms keeps at least this share of sync DDP's steps/s at 0 ms ...
AUC_TOLERANCE = 0.01  # ... at an AUC within this of sync DDP's at 0 ms


@dataclass(frozen=True)
class Report:
    """Everything one run measured, and how it was asked to run."""

    dataset: Dataset
    settings: Settings
    sync_every: Sequence[int]
    repeats: int
    cases: dict[str, list[CaseResult]]  # label → one result per repeat, in table order
    skipped: dict[str, str]  # label → why it did not run
    flower: list[FlowerResult]
    flower_skipped: dict[str, str]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    run_loads: Sequence[float]  # 1-minute load average as each run of the compared cases started
    wan_reason: str | None
    gpu_note: str
    elapsed_s: float
    quick: bool


@dataclass(frozen=True)
class Verdict:
    """The issue's target for one K: lowcomm at 40 ms RTT against sync at 0 ms."""

    sync_every: int
    ratio: float | None
    auc_delta: float | None
    reason: str  # why it could not be judged, when ratio or auc_delta is None
    ratios: tuple[float, ...] = ()  # one per run: lowcomm at 40 ms / sync at 0 ms measured just before

    @property
    def throughput_ok(self) -> bool:
        return self.ratio is not None and self.ratio >= TARGET_RATIO

    @property
    def auc_ok(self) -> bool:
        return self.auc_delta is not None and abs(self.auc_delta) <= AUC_TOLERANCE

    @property
    def passed(self) -> bool:
        return self.throughput_ok and self.auc_ok


def sync_label(rtt_ms: float) -> str:
    return f"sync, RTT {rtt_ms:g} ms"


def lowcomm_label(sync_every: int, rtt_ms: float) -> str:
    return f"lowcomm K={sync_every}, RTT {rtt_ms:g} ms"


def median_rate(runs: Sequence[CaseResult]) -> float | None:
    """Median steps/s of the runs that finished, None if none did."""
    rates = [r.steps_per_s for r in runs if r.ok and r.steps_per_s is not None]
    return statistics.median(rates) if rates else None


def _first_ok(runs: Sequence[CaseResult]) -> CaseResult | None:
    return next((r for r in runs if r.ok), None)


def verdicts(rep: Report) -> list[Verdict]:
    """One verdict per K; unjudged (with the reason) when a case is missing or failed.

    The throughput ratio is the median of the per-run ratios: run r's lowcomm cases ran right after its
    sync case, so each ratio compares two measurements taken under the same load from other users.
    """
    out = []
    anchor = rep.cases.get(sync_label(0.0), [])
    for k in rep.sync_every:
        label = lowcomm_label(k, TARGET_RTT_MS)
        runs = rep.cases.get(label, [])
        pairs = [
            b.steps_per_s / a.steps_per_s
            for a, b in zip(anchor, runs, strict=False)
            if a.ok and b.ok and a.steps_per_s and b.steps_per_s is not None
        ]
        first_base, first_ours = _first_ok(anchor), _first_ok(runs)
        if not pairs or first_base is None or first_ours is None:
            missing = sync_label(0.0) if first_base is None else label
            why = rep.skipped.get(missing) or next((r.error for r in [*anchor, *runs] if r.error), "not run")
            out.append(Verdict(k, None, None, f"{missing}: {why}"))
            continue
        assert first_ours.auc is not None
        assert first_base.auc is not None
        out.append(Verdict(k, statistics.median(pairs), first_ours.auc - first_base.auc, "", tuple(pairs)))
    return out


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f}"


def _spread(values: Sequence[float], unit: str = "") -> str:
    """``min–max (n runs)``, or the single value."""
    if len(values) == 1:
        return f"{values[0]:,.1f}{unit} (1 run)"
    return f"{min(values):,.1f}–{max(values):,.1f}{unit} ({len(values)} runs)"


def _same(values: Sequence[float | None], digits: int) -> str:
    """One value when every run agrees (training is deterministic), else the range."""
    present = [v for v in values if v is not None]
    if not present:
        return "—"
    if max(present) - min(present) < 0.5 * 10**-digits:
        return f"{present[0]:.{digits}f}"
    return f"{min(present):.{digits}f}–{max(present):.{digits}f}"


def _ddp_table(rep: Report) -> list[str]:
    lines = [
        "| ranks | mode | K | link RTT | steps/s per rank (median) | runs | final loss | test ROC-AUC "
        "| syncs | MB sent per rank (train() estimate) | MB on the link, rank 0 / rank 1 (eth0 tx) "
        "| kB per exchange: estimate / on the link | wall s |",
        "|--:|---|--:|---|--:|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    n_params = parameter_count(rep)
    for runs in rep.cases.values():
        first = runs[0]
        ok = [r for r in runs if r.ok]
        link = {"none": "no network", "loopback": "loopback, no forwarder"}.get(
            first.network
        ) or f"{first.rtt_ms or 0:g} ms"
        mode = "local (no process group)" if first.ranks == 1 else first.mode
        head = f"| {first.ranks} | {mode} | {first.sync_every or '—'} | {link} "
        if not ok:
            error = (first.error or "no result").replace("|", "/")
            lines.append(f"{head}| failed: {error[:400]} ||||||||")
            continue
        rate = median_rate(ok)
        assert rate is not None
        sample = ok[0]
        on_link = (
            " / ".join(_mb(statistics.median(r.link_bytes[i] for r in ok)) for i in range(2))
            if sample.link_bytes
            else "—"
        )
        failed = len(runs) - len(ok)
        runs_cell = _spread([r.steps_per_s for r in ok if r.steps_per_s is not None])
        if failed:
            runs_cell += f"; {failed} failed: {(next(r.error for r in runs if r.error) or '')[:200]}"
        syncs = str(sample.syncs) if first.ranks > 1 else "—"
        lines.append(
            f"{head}| {rate:,.1f} | {runs_cell} | {_same([r.final_loss for r in ok], 4)} "
            f"| {_same([r.auc for r in ok], 4)} | {syncs} | {_mb(sample.bytes_estimate or 0)} | {on_link} "
            f"| {_per_exchange(sample, n_params)} | {statistics.median(r.wall_s or 0.0 for r in ok):.1f} |"
        )
    for label, why in rep.skipped.items():
        lines.append(f"| 2 | {label} | | | skipped: {why} ||||||||")
    return lines


def parameter_count(rep: Report) -> int:
    """FraudMLP's parameters: two hidden layers of ``hidden`` and one logit."""
    hidden = rep.settings.hidden
    return (rep.dataset.n_features + 1) * hidden + (hidden + 1) * hidden + hidden + 1


def _per_exchange(case: CaseResult, n_params: int) -> str:
    """kB one rank sends per exchange (a sync step's gradients, a lowcomm outer step's pseudo-gradient).

    train()'s estimate is the initial broadcast of the float32 parameters plus one all-reduce per
    exchange, so the difference divided by the exchanges is the estimate's share of one. On the link:
    eth0's bytes over the exchanges, everything else (rendezvous, broadcast, barrier) included.
    """
    if case.ranks < 2 or not case.syncs or case.bytes_estimate is None:
        return "—"
    estimate = (case.bytes_estimate - 4 * n_params) / case.syncs
    link = f"{case.link_bytes[0] / case.syncs / 1e3:.1f}" if case.link_bytes else "—"
    return f"{estimate / 1e3:.1f} / {link}"


def _link_lines(rep: Report) -> list[str]:
    """What a step of sync DDP costs in round trips: the price a lowcomm sync pays once per K steps."""
    parts = []
    for runs in rep.cases.values():
        first = runs[0]
        rate = median_rate(runs)
        if first.mode == "sync" and first.network == "namespaces" and first.rtt_ms and rate:
            ms = 1000 / rate
            parts.append(f"{ms:.0f} ms per step at {first.rtt_ms:g} ms RTT ({ms / first.rtt_ms:.1f} RTT)")
    if not parts:
        return []
    return [
        f"Sync DDP with a delay: {'; '.join(parts)}. Its one gradient all-reduce per step (one bucket: "
        "the model is small) takes about two round trips with gloo (ring with two ranks: reduce-scatter, "
        "then all-gather), so one lowcomm sync costs about as much, and K has to spread it over enough "
        "steps of local compute.",
        "",
    ]


def _verdict_lines(rep: Report) -> list[str]:
    anchor = median_rate(rep.cases.get(sync_label(0.0), []))
    plain = median_rate(rep.cases.get(LOOPBACK, []))
    lines = [
        f"Target (from the issue): lowcomm at {TARGET_RTT_MS:g} ms RTT keeps ≥ {TARGET_RATIO:.0%} of the "
        f"steps/s of sync DDP at 0 ms"
        + (f" ({anchor:,.1f} steps/s here)" if anchor is not None else "")
        + f", at equal test ROC-AUC (±{AUC_TOLERANCE}).",
        "",
    ]
    for v in verdicts(rep):
        if v.ratio is None or v.auc_delta is None:
            lines.append(f"- K={v.sync_every}: **not judged**: {v.reason}")
            continue
        overall = "**PASS**" if v.passed else "**FAIL**"
        ours = median_rate(rep.cases[lowcomm_label(v.sync_every, TARGET_RTT_MS)])
        reference = (
            f" (against sync DDP on loopback without the forwarder, {plain:,.1f} steps/s: "
            f"{(ours or 0) / plain:.0%})"
            if plain is not None
            else ""
        )
        each = ", ".join(f"{r:.0%}" for r in v.ratios)
        lines.append(
            f"- K={v.sync_every}: {overall}: {ours:,.1f} steps/s; {v.ratio:.0%} of sync at 0 ms, median of "
            f"the runs' ratios ({each}) ({'met' if v.throughput_ok else 'missed'}){reference}; ROC-AUC "
            f"{v.auc_delta:+.4f} against sync at 0 ms ({'met' if v.auc_ok else 'missed'})."
        )
    return lines


def _flower_lines(rep: Report) -> list[str]:
    if not rep.flower and not rep.flower_skipped:
        return []
    lines = [
        "### Flower: federated rounds against local training",
        "",
        "Two sites (the same rows, every other one to each site: each keeps the demo's time split), the "
        "Flower app's numpy logistic regression, FedAvg. The SuperLink and `flwr run` run in host 1 of a "
        "three-host DelayedNetwork, each site's SuperNode in hosts 2 and 3 (`run_federated(..., "
        "coordinator_wrap=, wrap=)`), so every message crosses the link. Local baseline: "
        "`local_baseline` on the union of both sites' files, rounds × local epochs, in this process.",
        "",
        "| network | rounds × local epochs | s per round | of which local training (slower site) "
        "| federated wall s | local baseline s (load + train) | overhead per round s | wall / baseline "
        "| ROC-AUC federated | ROC-AUC baseline | kB per site | every site replied every round |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for f in rep.flower:
        link = "loopback" if f.rtt_ms is None else f"RTT {f.rtt_ms:g} ms"
        shape = f"{f.rounds} × {f.local_epochs}"
        if f.error is not None:
            lines.append(f"| {link} | {shape} | failed: {f.error[:400].replace('|', '/')} ||||||||||")
            continue
        assert f.seconds_per_round is not None
        assert f.wall_s is not None
        assert f.baseline_s is not None
        assert f.baseline_train_s is not None
        assert f.site_train_s_per_round is not None
        overhead = f.seconds_per_round - f.baseline_train_s / f.rounds
        lines.append(
            f"| {link} | {shape} | {f.seconds_per_round:.2f} | {f.site_train_s_per_round:.2f} "
            f"| {f.wall_s:.1f} | {f.baseline_s:.2f} ({f.baseline_train_s:.2f}) | {overhead:.2f} "
            f"| {f.wall_s / f.baseline_s:.0f}× | {f.auc:.4f} | {f.baseline_auc:.4f} "
            f"| {(f.bytes_per_site or 0) / 1e3:.1f} | {'yes' if f.all_replied else '**no**'} |"
        )
    for label, why in rep.flower_skipped.items():
        lines.append(f"| {label} | skipped: {why} ||||||||||")
    lines += [
        "",
        "Overhead per round = s per round − the baseline's training time per round (the local work a round "
        "replaces); wall / baseline compares the whole federated run (process start-up, setup round, "
        "evaluation, teardown) with loading and training centrally.",
        "",
    ]
    return lines


def render(rep: Report) -> str:
    """The section's markdown."""
    s, d = rep.settings, rep.dataset
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    params = parameter_count(rep)
    libs = ", ".join(f"{n} {version(n)}" for n in ("torch", "flwr"))
    ks = ", ".join(str(k) for k in rep.sync_every)
    title = "## Training: 1 rank, sync DDP and low-communication across a delayed link" + (
        "; Flower" if rep.flower or rep.flower_skipped else ""
    )
    repeats = (
        "One run per case."
        if rep.repeats == 1
        else f"The cases the target compares (1 rank, sync at 0 ms and on loopback, lowcomm at "
        f"{TARGET_RTT_MS:g} ms) ran {rep.repeats} times, each run's lowcomm right after its sync at 0 ms so "
        "that both saw the same load from the machine's other users; the table gives the median and the "
        "range. The other cases ran once: sync with a delay waits on the link at every step, so the CPU's "
        "noise hardly moves it; lowcomm at 0 and 20 ms is CPU-bound, so its single run is only indicative."
    )
    load = f"load average (1 min) {rep.load_before[0]:.2f} at the start, {rep.load_after[0]:.2f} at the end"
    if rep.run_loads:
        load += (
            f"; as each run of the compared cases started: {', '.join(f'{x:.1f}' for x in rep.run_loads)}, "
            f"median {statistics.median(rep.run_loads):.1f}"
        )
    lines = [
        f"{title} ({now}{', --quick' if rep.quick else ''})",
        "",
        f"- Machine: {machine()}; {libs}.",
        f"- Stratus: {revision()}. Whole run: {rep.elapsed_s / 60:.1f} min.",
        f"- Data: the fraud demo's features (`make_table({d.rows:,}, seed={SEED})` → validate → dedupe → "
        f"`build_features(test_fraction={TEST_FRACTION})`): {d.n_features} features, {d.train_rows:,} train "
        f"rows, {d.test_rows:,} test rows (the last {TEST_FRACTION:.0%} of time), fraud rate "
        f"{d.fraud_rate:.2%}. Two ranks each train on every other train row (`stratus.training.data.shard`).",
        f"- Training: the demo's `fraud_torch:train_distributed` step run by the step worker "
        f"(`FraudMLP`, hidden {s.hidden}, {params:,} parameters), batch {s.batch_size} per rank, AdamW lr "
        f"{s.lr:g}, **{s.steps} steps in every case** (the same data and seed). lowcomm: DiLoCo-style outer "
        f"SGD (Nesterov, lr 0.7, momentum 0.9), one all-reduce every K = {ks} steps, with `train()`'s "
        f"defaults, which the demo's step uses: {LOWCOMM_SCHEDULE}.",
        '- Link: the issue\'s "20 ms and 40 ms link delay" is read as **round-trip time**: '
        "`DelayedNetwork(2, one_way_delay_ms=10 / 20)`. Each rank runs in its own network namespace, also "
        "at 0 ms, so every 2-rank case takes the same path (rank 0's link address as coordinator, gloo on "
        "`eth0`, MTU 65520, the userspace forwarder copying every frame); 1 rank has no network.",
        f"- CPU-bound: 2 cores hold both ranks (`OMP_NUM_THREADS=1` each) **and** the forwarder, and other "
        f"engineers' jobs shared the machine ({load}). At 0 ms the ranks' steps/s are limited by these "
        f"cores, not by any link: trust ratios over absolutes.",
        f"- Timing: steps/s is `train()`'s own (the training loop after rendezvous and the initial "
        f"broadcast), per rank (every rank takes the same steps). {repeats} Final loss: mean training loss "
        "of the last 16 steps, averaged over ranks; ROC-AUC: rank "
        "0's model (every rank ends with the same one) on the test split. wall s: worker start to exit "
        "(imports, data load, rendezvous, evaluation, model file).",
        "- Bytes: `train()`'s estimate of what a rank sends in collectives (ring all-reduce: 2·(N−1)/N of "
        "the tensor each time, plus the initial broadcast), and what each namespace's `eth0` actually sent "
        "(all frames: TCP/IP headers, rendezvous, barriers and the final loss included). Per exchange "
        "(one step of sync, one outer step of lowcomm): the estimate less the initial broadcast, and "
        "rank 0's `eth0` bytes, each divided by the exchanges (the latter with everything else in it).",
        f"- GPU: {rep.gpu_note}",
    ]
    if rep.wan_reason:
        lines.append(
            f"- **No delayed network on this machine** ({rep.wan_reason}): the 2-rank cases ran on loopback "
            "in one namespace and the delayed cases were skipped."
        )
    lines += ["", *_ddp_table(rep), "", *_link_lines(rep), *_verdict_lines(rep), "", *_flower_lines(rep)]
    return "\n".join(lines).rstrip("\n") + "\n"


def replace_section(results: Path, text: str) -> None:
    """Drop every earlier Training section from ``results`` and append ``text``."""
    results_lib.replace_section(results, "Training", text)
