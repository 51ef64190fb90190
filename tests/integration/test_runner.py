"""The runner end to end with real worker processes and real local stores, one scenario per test.

Each test writes the small world of tests/run_world.py into its own folder and runs it through the SDK,
then reads back the state database and the stores: nothing of our own is mocked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stratus.runner import Faults, RetryPolicy, RunEvent, RunReport, run_file
from stratus.state import Repository, open_database, state_url
from stratus.storage import open_store
from tests.run_world import pipeline, platform, write_world

pytestmark = pytest.mark.slow  # each test runs a whole pipeline: a dozen worker processes

FAST = RetryPolicy(first_s=0.1, factor=2.0, max_s=0.5)


@pytest.fixture(autouse=True)
def _no_state_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRATUS_STATE_URL", raising=False)


class Recorder:
    """Collects the events a user would have seen."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    def __call__(self, event: RunEvent) -> None:
        self.events.append(event)

    def states(self, step: str) -> list[str]:
        return [e.state or "" for e in self.events if e.kind == "step" and e.step == step]

    def notes(self) -> list[str]:
        return [e.message for e in self.events if e.kind == "note"]


def run(world: Path, **kwargs: object) -> tuple[RunReport, Recorder]:
    recorder = Recorder()
    report = run_file(world, on_event=recorder, retry=FAST, **kwargs)  # type: ignore[arg-type]
    return report, recorder


def repo_of(world: Path) -> Repository:
    return Repository(open_database(state_url(world.parent / "stratus.yaml")))


def test_a_pipeline_runs_end_to_end_with_replicas_transfers_metrics_and_cost(tmp_path: Path) -> None:
    world = write_world(tmp_path)
    report, seen = run(world)
    assert report.succeeded, report.error
    assert [(s.step, s.status, s.site, s.attempts) for s in report.steps] == [
        ("square", "succeeded", "cheap", 1),
        ("total", "succeeded", "cheap", 1),
        ("evens", "succeeded", "cheap", 1),
        ("combine", "succeeded", "cheap", 1),
    ]
    combine = report.steps[-1]
    assert combine.metrics == {"auc": 0.875, "evens": 25}
    names = {a.name: a for a in report.artifacts}
    assert list(names) == [
        "dataset:numbers",
        "square.squares",
        "total.sum",
        "evens.evens",
        "combine.report",
    ]
    assert names["square.squares"].replicas == ("cheap", "vault")  # dual-write to `replicate`
    assert names["evens.evens"].replicas == ("cheap",)
    repo = repo_of(world)
    fetched = tmp_path / "report.txt"
    open_store("cheap", "file://sites/cheap", base_dir=tmp_path).fetch(
        names["combine.report"].sha256, fetched
    )
    assert fetched.read_text() == f"sum={sum(i * i for i in range(50))} evens=25"
    assert repo.artifact(names["evens.evens"].sha256).is_dir  # type: ignore[union-attr]
    copies = [(t.artifact, t.from_site, t.to_site, t.reason) for t in repo.transfers(report.run_id)]
    assert copies == [("square.squares", "cheap", "vault", "replica (dual-write)")]
    assert repo.transfers(report.run_id)[0].bytes == names["square.squares"].size_bytes
    assert report.cost_usd > 0  # compute-seconds and the egress of the copy, from the ledger
    assert seen.states("square") == ["staging", "running", "publishing", "succeeded"]
    assert seen.states("dataset:numbers") == ["making", "running", "succeeded"]
    assert json.loads(json.dumps(report.to_json()))["status"] == "succeeded"


def test_a_rerun_reuses_every_step_and_a_changed_param_reruns_only_what_depends_on_it(tmp_path: Path) -> None:
    world = write_world(tmp_path)
    first, _ = run(world)
    assert first.succeeded, first.error
    second, seen = run(world)
    assert second.succeeded, second.error
    assert [s.status for s in second.steps] == ["cached"] * 4
    assert {s.cached_from for s in second.steps} == {first.run_id}
    assert [a.sha256 for a in second.artifacts] == [a.sha256 for a in first.artifacts]
    assert seen.states("dataset:numbers") == ["cached"]
    assert any("reused from run " + first.run_id in e.message for e in seen.events if e.kind == "step")

    write_world(tmp_path, pipeline_spec=pipeline(evens={"params": {"sleep": 0.01}}))
    third, _ = run(world)
    assert {s.step: s.status for s in third.steps} == {
        "square": "cached",
        "total": "cached",
        "evens": "succeeded",
        "combine": "cached",  # evens produced the same bytes, so combine's inputs did not change
    }
    attempts = [a for a in repo_of(world).attempts(third.run_id) if a.status == "succeeded"]
    assert [a.step for a in attempts] == ["evens"]


def test_a_failing_step_retries_with_backoff_then_succeeds_and_says_so(tmp_path: Path) -> None:
    marker = tmp_path / "failures"
    flaky = {
        "run": "flow_steps:flaky",
        "params": {"marker": str(marker), "fail_times": 1},
        "retry_on_error": True,
    }
    spec = pipeline(square=flaky)
    world = write_world(tmp_path, pipeline_spec=spec)
    report, seen = run(world)
    assert report.succeeded, report.error
    assert report.steps[0].attempts == 2
    assert seen.states("square")[:4] == ["staging", "running", "retrying", "staging"]
    [note] = seen.notes()
    assert note.startswith("square: attempt 1 failed at cheap (raised RuntimeError: flaky failure 1 (log: ")
    assert note.endswith("); an error in the step's code, retrying in 0.1 s (1 of 3 attempts used)")
    assert report.notes == (note,)


def test_a_step_out_of_attempts_fails_the_run_and_names_the_cause(tmp_path: Path) -> None:
    marker = tmp_path / "failures"
    flaky = {
        "run": "flow_steps:flaky",
        "params": {"marker": str(marker), "fail_times": 9},
        "max_attempts": 2,
        "retry_on_error": True,
    }
    world = write_world(tmp_path, pipeline_spec=pipeline(square=flaky))
    report, _ = run(world)
    assert report.status == "failed"
    assert report.error is not None
    assert report.error.startswith(
        "step 'square' failed after 2 attempt(s): raised RuntimeError: flaky failure 2"
    )
    assert [(s.step, s.status) for s in report.steps] == [
        ("square", "failed"),
        ("total", "pending"),
        ("evens", "pending"),
        ("combine", "pending"),
    ]
    assert repo_of(world).run(report.run_id).status == "failed"  # type: ignore[union-attr]


def test_a_preempted_spot_step_moves_to_the_next_best_site_and_the_plan_is_resolved(tmp_path: Path) -> None:
    world = write_world(tmp_path, pipeline_spec=pipeline(square={"spot": True}))
    report, seen = run(world, faults=Faults(preempt={"square": 1}))
    assert report.succeeded, report.error
    square = report.steps[0]
    assert (square.site, square.offering, square.attempts) == ("backup", "node-backup", 2)
    assert seen.states("square")[:3] == ["staging", "running", "preempted"]
    [note] = seen.notes()
    assert note == (
        "square: preempted (spot capacity reclaimed) at cheap; moving to backup (node-backup, on-demand), "
        "the next-best placement; re-planned 4 remaining step(s)"
    )
    rows = [(a.step, a.site, a.status) for a in repo_of(world).attempts(report.run_id) if a.step == "square"]
    assert rows == [("square", "cheap", "preempted"), ("square", "backup", "succeeded")]
    # square's outputs now live at backup (and vault); readers placed at cheap get a recorded copy.
    names = {a.name: a for a in report.artifacts}
    assert names["square.squares"].replicas == ("backup", "cheap", "vault")
    copies = {(t.from_site, t.to_site, t.reason) for t in repo_of(world).transfers(report.run_id)}
    assert ("backup", "vault", "replica (dual-write)") in copies
    assert any(c[1] == "cheap" and c[2].startswith("input of ") for c in copies)


def test_a_replica_that_cannot_be_written_fails_the_step_with_a_storage_error_naming_site_and_url(
    tmp_path: Path,
) -> None:
    (tmp_path / "blocker").write_text("a regular file, so nothing can be created beneath it")
    world = write_world(
        tmp_path,
        platform_spec=platform(vault_storage="file://blocker/vault"),
        pipeline_spec=pipeline(square={"max_attempts": 1}),
    )
    report, _ = run(world)
    assert report.status == "failed"
    assert report.error is not None
    assert report.error.startswith(
        "step 'square' failed after 1 attempt(s): "
        "StorageError: site vault (file://blocker/vault): dual-write of "
    )
    assert "verified replicas: cheap" in report.error
    repo = repo_of(world)
    assert repo.names(report.run_id).keys() == {"dataset:numbers"}  # square was never acknowledged


def test_a_dataset_whose_make_raises_fails_once_with_its_error_and_is_not_retried(tmp_path: Path) -> None:
    # A dataset's make: runs through the same attempt lifecycle as a step: the user's exception ends
    # the attempt as failed (never left running), with its duration and exit code, and is not retried.
    marker = tmp_path / "failures"
    spec = pipeline()
    spec["datasets"]["numbers"]["make"] = "flow_steps:flaky"
    spec["datasets"]["numbers"]["params"] = {"marker": str(marker), "fail_times": 5}
    world = write_world(tmp_path, pipeline_spec=spec)
    report, _ = run(world)
    assert not report.succeeded
    assert (report.error or "").startswith(
        "making dataset 'numbers' with flow_steps:flaky failed in its own code, so it was not retried: "
        "raised RuntimeError: flaky failure 1"
    ), report.error
    assert marker.read_text() == "1"  # one attempt: the user's code is not retried
    made = [a for a in repo_of(world).attempts(report.run_id) if "numbers" in a.step]
    assert [(a.status, a.attempt) for a in made] == [("failed", 1)]
    assert made[0].duration_s is not None
    assert made[0].exit_code not in (None, 0)
    assert "flaky failure 1" in (made[0].error or "")
