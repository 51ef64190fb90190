"""``kill -9`` of ``stratus run`` at many moments, then ``--resume``: the run finishes, nothing is redone
that had finished, and no artifact is lost or duplicated.

The CLI runs as a real subprocess; kills land on moments read from its own progress lines (during
dataset making, mid-step, right after a step was acknowledged, mid-publish) and at fixed delays.
"""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from stratus.state import DONE, Repository, open_database, state_url
from stratus.storage import open_store
from tests.run_world import cli_env, one_json, pipeline, stratus_cli, write_world

pytestmark = pytest.mark.slow

STEPS = ("square", "total", "evens", "combine")
SITES = ("cheap", "backup", "vault")
_RUN_ID = re.compile(r"^run (\S+): ")


class Cli:
    """``stratus run`` in a subprocess whose output lines we can wait for."""

    def __init__(self, world: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stratus", "run", str(world), *args],
            cwd=world.parent,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def kill_when(self, pattern: str, timeout: float = 60) -> None:
        """SIGKILL the moment a line matches ``pattern`` (fails if the run ends first)."""
        self.wait_for(re.compile(pattern), timeout)
        self.proc.kill()
        self.proc.wait(10)

    def kill_after(self, seconds: float) -> None:
        """SIGKILL ``seconds`` after the run announced itself (start-up time varies with machine load)."""
        self.wait_for(_RUN_ID, 60)
        time.sleep(seconds)
        self.proc.kill()
        self.proc.wait(10)

    def wait_for(self, wanted: re.Pattern[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"the run ended before {wanted.pattern!r}:\n" + "\n".join(self.seen)
            self.seen.append(line)
            if wanted.search(line):
                return

    def run_id(self) -> str:
        for line in self.seen:
            if match := _RUN_ID.match(line):
                return match.group(1)
        raise AssertionError("no run id printed:\n" + "\n".join(self.seen))


def finish(world: Path, run_id: str) -> dict[str, object]:
    result = stratus_cli("run", world, "--resume", run_id, "--json", cwd=world.parent)
    assert result.returncode == 0, result.stderr
    assert f"resuming run {run_id}" in result.stderr
    return one_json(result.stdout)


def assert_finished_exactly_once(world: Path, run_id: str, payload: dict[str, object]) -> Repository:
    """Every step done once, artifacts unique and complete, replicas verified, nothing orphaned."""
    folder = world.parent
    repo = Repository(open_database(state_url(folder / "stratus.yaml")))
    assert payload["run_id"] == run_id
    assert payload["status"] == "succeeded"
    row = repo.run(run_id)
    assert row is not None
    assert row.status == "succeeded"
    attempts = repo.attempts(run_id)
    assert not [a for a in attempts if a.status == "running"]
    for step in (*STEPS, "dataset:numbers"):
        done = [a for a in attempts if a.step == step and a.status in DONE]
        assert len(done) <= 1, f"{step} succeeded {len(done)} times"
        if step in STEPS:
            assert len(done) == 1, f"{step} never finished: {[(a.attempt, a.status) for a in attempts]}"
    names = repo.names(run_id)
    assert sorted(names) == sorted(
        ["dataset:numbers", "square.squares", "total.sum", "evens.evens", "combine.report"]
    )
    recorded = {a.sha256: replicas for a, replicas in repo.artifacts()}
    assert set(recorded) == set(names.values()), "an artifact is in the manifest but named by no step"
    for sha, replicas in recorded.items():
        assert replicas, f"{sha} has no replica"
        assert set(replicas.values()) == {"verified"}, replicas
    for site in SITES:
        held = {o.sha256 for o in open_store(site, f"file://sites/{site}", base_dir=folder).objects()}
        expected = {sha for sha, replicas in recorded.items() if site in replicas}
        assert held == expected, f"{site} holds {held - expected} unrecorded, lacks {expected - held}"
    verify = stratus_cli("storage", "verify", "--json", cwd=folder)
    assert verify.returncode == 0, verify.stdout
    assert one_json(verify.stdout)["unhealthy"] == 0
    report = folder / "report.txt"
    open_store("cheap", "file://sites/cheap", base_dir=folder).fetch(names["combine.report"], report)
    assert report.read_text() == f"sum={sum(i * i for i in range(50))} evens=25"
    _assert_no_orphan_workers(folder)
    return repo


def _assert_no_orphan_workers(folder: Path) -> None:
    deadline = time.monotonic() + 5  # a worker notices its runner died within half a second
    while True:
        alive = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if "stratus.executors.worker" in cmdline and str(folder) in cmdline:
                alive.append(cmdline)
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not alive, f"workers outlived their runner: {alive}"


def test_kill_9_at_each_moment_of_a_run_then_resume_finishes_it_once(tmp_path: Path) -> None:
    spec = pipeline(sleep=0.4)
    spec["datasets"]["numbers"]["params"]["sleep"] = 4  # long enough to try a second runner meanwhile
    world = write_world(tmp_path, pipeline_spec=spec)
    first = Cli(world)
    first.wait_for(re.compile(r"dataset:numbers\s+running"), 60)  # while the dataset is being made
    run_id = first.run_id()
    twin = stratus_cli("run", world, "--resume", run_id, cwd=tmp_path)  # the run is still going
    assert twin.returncode == 1
    assert f"run '{run_id}' is still being run by process " in " ".join(twin.stderr.split())
    first.proc.kill()
    first.proc.wait(10)
    for moment in (
        r"square\s+running",  # mid-step
        r"square\s+succeeded",  # just after the step was acknowledged
        r"(total|evens)\s+publishing",  # while outputs are being written
        r"combine\s+running",
    ):
        resumed = Cli(world, "--resume", run_id)
        resumed.kill_when(moment)
        assert any(f"resuming run {run_id}" in line for line in resumed.seen)
    repo = assert_finished_exactly_once(world, run_id, finish(world, run_id))
    statuses = [(a.step, a.status) for a in repo.attempts(run_id)]
    assert ("dataset:numbers", "interrupted") in statuses
    assert ("square", "interrupted") in statuses
    assert ("combine", "interrupted") in statuses
    # square finished before the third kill, so no later session ran it again.
    assert [s for s in statuses if s == ("square", "succeeded")] == [("square", "succeeded")]


@pytest.mark.parametrize("seconds", [0, 1.0, 2.5])
def test_kill_9_after_a_delay_then_resume_finishes_it_once(tmp_path: Path, seconds: float) -> None:
    world = write_world(tmp_path, pipeline_spec=pipeline(sleep=0.3))
    run = Cli(world)
    run.kill_after(seconds)  # 0: the instant the run exists, before anything has executed
    run_id = run.run_id()
    assert_finished_exactly_once(world, run_id, finish(world, run_id))
