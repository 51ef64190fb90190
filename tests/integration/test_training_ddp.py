"""Real two-rank training on loopback, each rank a step worker started the way the runner starts it.

Checks the promises of stratus.training: ranks start from rank 0's weights and end bit-identical (sync:
after every step; lowcomm: after every sync), training learns, and a rank whose peer dies, hangs or
never arrives exits non-zero on its own with a message naming the peer, instead of hanging. Durations
are never asserted; a generous wait turns a hang into a failure with the rank's log.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from stratus.training import train
from stratus.training.data import batches
from stratus.training.ddp import WATCHDOG_EXIT_CODE
from tests.integration.training_harness import launch, wait_for

pytestmark = pytest.mark.slow

WAIT_S = 120.0  # for a rank to finish: start-up on a busy 2-core machine takes seconds, a hang forever
STEPS = {"sync": 24, "lowcomm": 160}


def _ok(ranks: list[Any]) -> list[dict[str, Any]]:
    codes = [r.wait(WAIT_S) for r in ranks]
    assert codes == [0] * len(ranks), "\n\n".join(r.log_text()[-3000:] for r in ranks)
    return [r.record() for r in ranks]


def test_both_modes_start_from_rank0_and_end_identical(tmp_path: Path) -> None:
    """lowcomm with its blocking schedule, identical after every sync; test_training_lowcomm covers the
    overlapped one (the default)."""
    params = {"modes": ["sync", "lowcomm"], "steps": STEPS, "sync_every": 8, "overlap": False}
    records = _ok(launch(tmp_path, params))
    for mode in ("sync", "lowcomm"):
        r0, r1 = records[0][mode], records[1][mode]
        assert r0["before"] != r1["before"]  # each rank drew its own weights ...
        assert r0["after"] == r1["after"]  # ... yet both end with rank 0's, trained identically
        assert r0["after"] < 0.25 * r0["before"], f"{mode} did not learn: {r0['before']} -> {r0['after']}"
        assert r0["stats"]["world_size"] == 2
        assert r0["stats"]["final_loss"] == r1["stats"]["final_loss"]
        synced = [(step, digest) for step, is_synced, digest in r0["digests"] if is_synced]
        assert synced == [(step, digest) for step, is_synced, digest in r1["digests"] if is_synced]
    sync0 = records[0]["sync"]["digests"]
    assert [s for s, is_synced, _ in sync0] == list(range(STEPS["sync"]))
    assert all(is_synced for _, is_synced, _ in sync0)
    lowcomm0, lowcomm1 = records[0]["lowcomm"]["digests"], records[1]["lowcomm"]["digests"]
    assert [s for s, is_synced, _ in lowcomm0 if is_synced] == list(range(7, STEPS["lowcomm"], 8))
    between = [a[2] != b[2] for a, b in zip(lowcomm0, lowcomm1, strict=True) if not a[1]]
    assert all(between), "between syncs each rank trains its own copy"
    sync_stats, lowcomm_stats = records[0]["sync"]["stats"], records[0]["lowcomm"]["stats"]
    assert lowcomm_stats["syncs"] == STEPS["lowcomm"] // 8
    sync_bytes = sync_stats["bytes_communicated_estimate"] / sync_stats["steps"]
    lowcomm_bytes = lowcomm_stats["bytes_communicated_estimate"] / lowcomm_stats["steps"]
    assert lowcomm_bytes < sync_bytes / 4  # per step: one exchange every 8 steps


def test_a_peer_that_dies_or_hangs_fails_the_other_rank(tmp_path: Path) -> None:
    """Two worlds at once (start-up is the slow part): in one, rank 1 is killed during sync training and
    rank 0's next collective fails at once; in the other, rank 1 is stopped during lowcomm training and
    keeps its sockets open, so only the collective's timeout can end rank 0's wait."""
    worlds = {
        signal.SIGKILL: launch(
            tmp_path / "killed",
            {"modes": ["sync"], "steps": {"sync": 10**7}, "marker_after": 3, "step_sleep_s": 0.002},
            timeout_s=10,
        ),
        signal.SIGSTOP: launch(
            tmp_path / "stopped",
            {"modes": ["lowcomm"], "steps": {"lowcomm": 10**7}, "marker_after": 3, "step_sleep_s": 0.002},
            timeout_s=3,
        ),
    }
    try:
        for sig, ranks in worlds.items():
            wait_for(ranks[1].workdir / "started", ranks, WAIT_S)
            ranks[1].process.send_signal(sig)
        codes = [ranks[0].wait(WAIT_S) for ranks in worlds.values()]
    finally:
        for ranks in worlds.values():
            for r in ranks:
                r.process.kill()  # SIGKILL ends a stopped process too
                r.process.wait()
    assert codes == [1, 1], "\n\n".join(ranks[0].log_text()[-3000:] for ranks in worlds.values())
    killed, stopped = (ranks[0].result()["error"] for ranks in worlds.values())
    assert "rank 0/2 (site site-a): a collective with its peers failed during sync training" in killed
    assert "Peers: rank 1 (site-b). A peer probably crashed or hung" in killed
    assert "rank 0/2 (site site-a): a collective with its peers failed during lowcomm training" in stopped
    # lowcomm waits on its overlapped all-reduce; gloo words that one's timeout in more than one way.
    assert "the outer step's all-reduce failed: " in stopped, stopped
    assert "timeout" in stopped.lower() or "timed out" in stopped.lower(), stopped
    assert "Peers: rank 1 (site-b)" in stopped


def test_missing_peers_fail_the_rendezvous(tmp_path: Path) -> None:
    """Rank 0 waits for a rank 1 that never starts; a rank 1 finds no rank 0 listening. Both give up."""
    params = {"modes": ["sync"], "steps": {"sync": 1}}
    alone0 = launch(tmp_path / "only0", params, ranks=[0], timeout_s=3)[0]
    alone1 = launch(tmp_path / "only1", params, ranks=[1], timeout_s=3)[0]
    assert (alone0.wait(WAIT_S), alone1.wait(WAIT_S)) == (1, 1), alone0.log_text() + alone1.log_text()
    error0, error1 = alone0.result()["error"], alone1.result()["error"]
    assert "rank 0/2 (site site-a) could not join the process group at 127.0.0.1:" in error0
    assert "within 3 s (gloo)" in error0
    assert "Peers: rank 1 (site-b); check that every rank started" in error0
    assert "rank 1/2 (site site-b) could not join the process group" in error1
    assert "Peers: rank 0 (site-a)" in error1


def test_watchdog_ends_a_hung_phase_with_its_own_exit_code() -> None:
    """What teardown gets when destroy_process_group never returns: a message and exit code 4; a phase
    that ends in time (disarm) passes unnoticed."""
    code = (
        "import time\n"
        "from stratus.training.cluster import Cluster\n"
        "from stratus.training.ddp import Watchdog\n"
        "dog = Watchdog(Cluster(1, 2, '127.0.0.1:1', ('a', 'b'), 'b', 0.5))\n"
        "dog.arm('rendezvous', 0.2)\n"
        "dog.disarm()\n"
        "time.sleep(0.5)\n"
        "print('rendezvous passed', flush=True)\n"
        "dog.arm('the final barrier and teardown', 0.5)\n"
        "time.sleep(60)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT_S)
    assert (done.returncode, done.stdout) == (WATCHDOG_EXIT_CODE, "rendezvous passed\n")
    assert "rank 1/2 (site b) hung in the final barrier and teardown past its 0.5 s timeout" in done.stderr
    assert "peers: rank 0 (a); coordinator 127.0.0.1:1" in done.stderr


@pytest.mark.parametrize("mode", ["sync", "lowcomm"])
def test_single_process_needs_no_process_group(mode: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1024, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -1.0, 0.5, 0.0], dtype=np.float32))[:, None]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    loss = nn.MSELoss()
    with torch.no_grad():
        before = float(loss(model(torch.from_numpy(x)), torch.from_numpy(y)))
    stats = train(model, loss, batches(x, y, 32, seed=0), mode=mode, steps=160, sync_every=8, lr=0.01)
    with torch.no_grad():
        after = float(loss(model(torch.from_numpy(x)), torch.from_numpy(y)))
    assert after < 0.25 * before
    assert (stats.steps, stats.world_size, stats.bytes_communicated_estimate) == (160, 1, 0)
    assert stats.syncs == (160 if mode == "sync" else 20)


def test_bad_arguments_are_named() -> None:
    model = nn.Linear(2, 1)
    data = batches(np.zeros((8, 2), np.float32), np.zeros((8, 1), np.float32), 4, seed=0)
    with pytest.raises(ValueError, match="mode must be 'sync' or 'lowcomm', got 'async'"):
        train(model, nn.MSELoss(), data, mode="async", steps=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps and sync_every must be at least 1, got 5 and 0"):
        train(model, nn.MSELoss(), data, mode="lowcomm", steps=5, sync_every=0)
    with pytest.raises(ValueError, match="batches_for_rank ran out after 2 batches; 3 steps need more"):
        train(model, nn.MSELoss(), [next(data), next(data)], mode="sync", steps=3)
    with pytest.raises(ValueError, match=r"batch_size must be in 1\.\.8 \(the rows this rank holds\), got 9"):
        next(batches(np.zeros((8, 2), np.float32), np.zeros((8, 1), np.float32), 9, seed=0))
