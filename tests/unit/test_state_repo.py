"""The run manifest's promises: same bytes are one artifact, writes are safe to race, a died run reopens
with its cut-short attempts marked, and a bad database URL says what to fix."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from stratus.errors import ConfigError
from stratus.state import Repository, default_url, open_database


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
