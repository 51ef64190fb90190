"""Federated training with real Flower processes on loopback: a SuperLink, one SuperNode per site.

Each test starts the Deployment Engine for real (flwr 1.42: 6–10 s per message round trip here), so
the file keeps to two sites, two rounds and small data, and shares the data between tests.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from stratus.errors import ExecutorError
from stratus.training.federated import local_baseline, run_federated

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud-detection"
sys.path.insert(0, str(EXAMPLE))  # the runner puts the pipeline's folder on sys.path the same way

from fraud_data import make_table  # noqa: E402
from fraud_features import build_features  # noqa: E402

pytestmark = pytest.mark.slow

ROUNDS = 2
LOCAL_EPOCHS = 3


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two sites' feature files, from different seeds and sizes, each readable only by its SuperNode."""
    root = tmp_path_factory.mktemp("sites")
    paths = {}
    for site, rows, seed in (("eu-west", 20_000, 11), ("eu-central", 16_000, 12)):
        (root / site).mkdir()
        paths[site] = root / site / "features.parquet"
        pq.write_table(build_features(make_table(rows, seed), test_fraction=0.25), paths[site])
    return paths


def _test_rows(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """The test split of every site, read here only to check the model (the federated run never does)."""
    xs, ys = [], []
    for path in paths:
        table = pq.read_table(path)
        columns = table.schema.metadata[b"feature_columns"].decode().split(",")
        test = np.asarray(table["split"].to_pylist()) == "test"
        xs.append(np.column_stack([table[c].to_numpy() for c in columns]).astype(np.float64)[test])
        ys.append(table["is_fraud"].to_numpy()[test])
    return np.vstack(xs), np.concatenate(ys)


def _assert_all_stopped(workdir: Path) -> None:
    """Every PID the runner started or saw below it is gone (or is no longer a Flower process)."""
    record = json.loads((workdir / "processes.json").read_text())
    assert set(record["processes"]) >= {"superlink", "flwr-run"}
    assert len(record["all_pids"]) >= len(record["processes"])
    for pid in record["all_pids"]:
        try:
            process = psutil.Process(pid)
            alive = process.status() != psutil.STATUS_ZOMBIE and any(
                "fl" in part for part in process.cmdline()
            )
        except psutil.NoSuchProcess:
            alive = False
        assert not alive, f"process {pid} is still running after run_federated returned"


def _when_setup_done(workdir: Path, action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` once the ServerApp has identified every site (its journal lists them)."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if "sites" in json.loads((workdir / "result.json").read_text()):
                    action()
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_two_sites_train_a_useful_model_and_each_reads_only_its_own_file(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    workdir = tmp_path / "run"
    result = run_federated(
        sites, workdir=workdir, rounds=ROUNDS, run_config={"local-epochs": LOCAL_EPOCHS}, timeout_s=240
    )

    assert [r.round for r in result.rounds] == [1, 2]
    for record in result.rounds:
        assert record.replies == 2
        assert set(record.sites) == set(sites)
        assert all(record.metrics[site]["num-examples"] > 10_000 for site in sites)
    # Residency: each site says it read its own file, and its SuperNode was never told of another.
    assert result.data_paths == {site: str(path.resolve()) for site, path in sites.items()}
    for site, path in sites.items():
        node_config = (workdir / f"{site}.node.toml").read_text()
        assert str(path) in node_config
        others = [str(p) for s, p in sites.items() if s != site]
        assert not any(other in node_config for other in others)
        assert not any(other in (workdir / f"supernode-{site}.log").read_text() for other in others)
    # Only model updates moved: per site, kilobytes against megabytes of data.
    for site, path in sites.items():
        moved = result.bytes_sent_per_site[site] + result.bytes_received_per_site[site]
        assert 0 < moved < path.stat().st_size / 100
    # The global model beats chance, by sklearn's count and by each site's own evaluation.
    x_test, y_test = _test_rows(list(sites.values()))
    assert roc_auc_score(y_test, result.model.predict_proba(x_test)) > 0.7
    assert result.weights.shape == (len(result.model.feature_columns) + 1,)
    assert all(result.evaluation[site]["test-auc"] > 0.7 for site in sites)
    _assert_all_stopped(workdir)

    baseline = local_baseline(list(sites.values()), epochs=ROUNDS * LOCAL_EPOCHS)
    assert baseline.test_auc > 0.7
    print(  # the numbers the benchmark reports; never asserted
        f"\nfederated: {result.seconds_per_round:.1f} s/round, {result.seconds:.1f} s wall; "
        f"local baseline {baseline.seconds:.3f} s ({baseline.train_seconds:.3f} s training)"
    )


def test_a_site_without_its_data_fails_the_run_naming_the_site(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    workdir = tmp_path / "run"
    missing = tmp_path / "nowhere" / "features.parquet"
    participants = {"eu-west": sites["eu-west"], "eu-central": missing}

    with pytest.raises(ExecutorError) as failure:
        run_federated(participants, workdir=workdir, rounds=ROUNDS, timeout_s=180)

    message = str(failure.value)
    assert message.startswith(
        f"federated run failed in setup: eu-central: FileNotFoundError: data path {missing} does not exist"
    )
    assert "eu-west:" not in message.split("\n---")[0]
    assert failure.value.site == "eu-central"
    assert "supernode-eu-central.log" in message  # the log tails come with the error
    _assert_all_stopped(workdir)


def test_a_site_that_loses_its_data_mid_run_fails_the_round_it_missed(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    workdir = tmp_path / "run"
    vanishing = tmp_path / "eu-central.parquet"
    vanishing.write_bytes(sites["eu-central"].read_bytes())
    participants = {"eu-west": sites["eu-west"], "eu-central": vanishing}
    watcher = _when_setup_done(workdir, vanishing.unlink)

    with pytest.raises(ExecutorError) as failure:
        run_federated(participants, workdir=workdir, rounds=ROUNDS, timeout_s=180)

    watcher.join(timeout=1)
    message = str(failure.value).split("\n---")[0]
    assert message.startswith("federated run failed in train round 1: eu-central: FileNotFoundError")
    assert failure.value.site == "eu-central"
    _assert_all_stopped(workdir)


def test_a_supernode_killed_mid_run_fails_the_run_naming_its_site(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    workdir = tmp_path / "run"

    def kill_eu_central() -> None:
        for child in psutil.Process().children(recursive=True):
            try:
                if any(part.endswith("eu-central.node.toml") for part in child.cmdline()):
                    child.kill()
            except psutil.Error:  # a Flower helper that has just exited
                continue

    watcher = _when_setup_done(workdir, kill_eu_central)
    with pytest.raises(ExecutorError) as failure:
        run_federated(sites, workdir=workdir, rounds=ROUNDS, timeout_s=180)

    watcher.join(timeout=1)
    message = str(failure.value).split("\n---")[0]
    assert message.startswith("SuperNode of site eu-central exited with code -9 in round 1 of 2")
    assert failure.value.site == "eu-central"
    _assert_all_stopped(workdir)
