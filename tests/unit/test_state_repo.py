"""The run manifest's promises: same bytes are one artifact, writes are safe to race, a died run reopens
with its cut-short attempts marked, and a bad database URL says what to fix."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from stratus.errors import ConfigError
from stratus.state import Repository, default_url, open_database
from stratus.state.upgrade import add_missing_columns


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository(open_database(default_url(tmp_path / ".stratus")))


def test_the_same_bytes_are_one_artifact_whoever_produces_them(repo: Repository) -> None:
    sha = "a" * 64
    for run in ("r1", "r2"):
        repo.add_artifact(sha, size_bytes=3, is_dir=False, producer="prep.x", run_id=run, residency="EU")
    [(artifact, replicas)] = repo.artifacts()
    assert (artifact.run_id, artifact.residency, replicas) == ("r1", "EU", {})


def test_replica_writes_from_many_threads_leave_one_row_with_the_last_status(repo: Repository) -> None:
    sha = "b" * 64
    repo.add_artifact(sha, size_bytes=1, is_dir=False, producer="p.o", run_id="r", residency=None)
    threads = [threading.Thread(target=repo.set_replica, args=(sha, "site", "verified")) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    repo.set_replica(sha, "site", "corrupt")
    assert repo.replicas(sha) == {"site": "corrupt"}


def test_a_deferred_replica_is_pending_and_never_downgrades_one_already_verified(repo: Repository) -> None:
    old, new = "c" * 64, "d" * 64
    for sha in (old, new):
        repo.add_artifact(sha, size_bytes=1, is_dir=False, producer="p.o", run_id="r", residency=None)
    repo.set_replica(old, "aws", "verified")
    assert repo.mark_pending(old, "aws") is False  # a failed write proves nothing about bytes found there
    assert repo.mark_pending(new, "aws") is True
    assert repo.mark_pending(new, "aws") is True  # idempotent
    repo.set_replica(new, "gcp", "verified")
    repo.set_replica(old, "gcp", "missing")
    assert repo.mark_pending(old, "gcp") is True  # lost, then deferred: it is owed again
    assert repo.replicas(old) == {"aws": "verified", "gcp": "pending"}
    assert repo.replicas(new) == {"aws": "pending", "gcp": "verified"}
    assert repo.pending() == {new: ["aws"], old: ["gcp"]}  # oldest deferral first
    repo.set_replica(new, "aws", "verified")
    assert repo.pending() == {old: ["gcp"]}


def test_reopening_a_run_marks_its_running_attempts_interrupted(repo: Repository) -> None:
    repo.create_run("r", pipeline="p", pipeline_file="", platform_file="", objective="cost", runner="h:1:0")
    done = repo.start_attempt(
        "r", "a", attempt=1, site="s", offering="o", pricing="spot", cache_key="k", log_path=None
    )
    repo.succeed_attempt(
        done,
        "r",
        duration_s=1.0,
        peak_memory_bytes=1,
        metrics={"m": 1},
        outputs={"x": "c" * 64},
        refs={"a.x": "c" * 64},
    )
    repo.start_attempt(
        "r", "b", attempt=1, site="s", offering="o", pricing="spot", cache_key="k2", log_path=None
    )
    repo.finish_run("r", "failed", "the runner died")
    assert repo.reopen_run("r", "h:2:0") == 1
    assert [(a.step, a.status) for a in repo.attempts("r")] == [("a", "succeeded"), ("b", "interrupted")]
    run = repo.run("r")
    assert run is not None
    assert (run.status, run.error, run.runner) == ("running", None, "h:2:0")
    assert repo.names("r") == {"a.x": "c" * 64}
    assert [c.step for c in repo.cached("k")] == ["a"]


def test_a_bad_state_url_is_a_config_error_naming_the_option() -> None:
    with pytest.raises(ConfigError) as caught:
        open_database("not a url")
    assert str(caught.value) == (
        "--state-url or $STRATUS_STATE_URL: 'not a url' is not a database URL; "
        "expected e.g. sqlite:///path/state.db or "
        "postgresql+psycopg://user@host/db"
    )


def test_an_attempt_reads_back_its_metrics_outputs_and_sites_as_values(repo: Repository) -> None:
    repo.create_run("r", pipeline="p", pipeline_file="", platform_file="", objective="cost", runner="h:1:0")
    ranks = repo.start_attempt(
        "r", "train", attempt=1, site="a", offering="o", pricing="spot", cache_key="k", log_path=None
    )
    repo.succeed_attempt(
        ranks,
        "r",
        duration_s=1.0,
        peak_memory_bytes=1,
        metrics={"loss": 0.5, "sites": ["a", "b"]},
        outputs={"model": "e" * 64},
        refs={"train.model": "e" * 64},
        sites=["a", "b"],
    )
    single = repo.start_attempt(
        "r", "report", attempt=1, site="a", offering="o", pricing="spot", cache_key="k2", log_path=None
    )
    repo.fail_attempt(single, "failed", "exit code 1")
    [train, report] = repo.attempts("r")
    assert (train.metrics, train.outputs, train.sites) == (
        {"loss": 0.5, "sites": ["a", "b"]},
        {"model": "e" * 64},
        ["a", "b"],
    )
    assert (report.metrics, report.outputs, report.sites) == ({}, {}, [])  # single-site: its site is `site`
    repo.create_run("r2", pipeline="p", pipeline_file="", platform_file="", objective="cost", runner="h:1:0")
    repo.record_cached("r2", "train", source=train, refs={"train.model": "e" * 64})
    [reused] = repo.attempts("r2")
    assert (reused.status, reused.sites, reused.outputs) == ("cached", ["a", "b"], {"model": "e" * 64})


# The step_runs table as versions before the `sites_json` column created it.
OLD_STEP_RUNS = """CREATE TABLE step_runs (
    id INTEGER NOT NULL, run_id VARCHAR(64) NOT NULL, step VARCHAR(160) NOT NULL,
    attempt INTEGER NOT NULL, site VARCHAR(128) NOT NULL, offering VARCHAR(128) NOT NULL,
    pricing VARCHAR(16) NOT NULL, status VARCHAR(16) NOT NULL, cache_key VARCHAR(64) NOT NULL,
    started_at DATETIME NOT NULL, finished_at DATETIME, duration_s FLOAT, peak_memory_bytes BIGINT,
    exit_code INTEGER, error TEXT, metrics_json TEXT NOT NULL, outputs_json TEXT NOT NULL,
    cached_from VARCHAR(64), log_path TEXT, PRIMARY KEY (id)
)"""


def test_a_state_database_from_before_the_sites_column_opens_with_its_attempts_sites(tmp_path: Path) -> None:
    folder = tmp_path / ".stratus"
    folder.mkdir()
    old = sqlite3.connect(folder / "state.db")
    old.execute(OLD_STEP_RUNS)
    rows = [  # a distributed step (its machines in its metrics, as recorded then) and a single-site one
        (1, "train", "a", '{"loss": 0.5, "sites": ["a", "b"]}'),
        (2, "report", "a", '{"rows": 3}'),
    ]
    old.executemany(
        "INSERT INTO step_runs (id, run_id, step, attempt, site, offering, pricing, status, cache_key, "
        "started_at, metrics_json, outputs_json) "
        "VALUES (?, 'r', ?, 1, ?, 'o', 'spot', 'succeeded', 'k', '2025-03-01 09:00:00', ?, '{}')",
        rows,
    )
    old.commit()
    old.close()
    db = open_database(default_url(folder))
    [train, report] = Repository(db).attempts("r")
    assert (train.sites, train.metrics) == (["a", "b"], {"loss": 0.5, "sites": ["a", "b"]})
    assert (report.sites, report.metrics) == ([], {"rows": 3})
    assert add_missing_columns(db.engine, type(train).metadata) == []  # added once: opening again is a no-op
    db.engine.dispose()
    again = open_database(default_url(folder))
    assert [a.sites for a in Repository(again).attempts("r")] == [["a", "b"], []]
    again.engine.dispose()
