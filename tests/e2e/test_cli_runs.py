"""``stratus runs ls|show|logs|cancel`` on real runs, run by the CLI in a subprocess as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.run_world import cli_env, one_json, pipeline, stratus_cli, write_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    world = write_world(tmp_path_factory.mktemp("runs"))
    result = stratus_cli("run", world, "--json", cwd=world.parent)
    assert result.returncode == 0, result.stderr
    return world, one_json(result.stdout)


def test_ls_lists_the_run_with_its_cost_and_sites(done: tuple[Path, dict[str, Any]]) -> None:
    world, report = done
    result = stratus_cli("runs", "ls", "--json", cwd=world.parent)
    assert result.returncode == 0, result.stderr
    [run] = one_json(result.stdout)["runs"]
    assert list(run) == [
        "id", "pipeline", "status", "started", "finished", "duration_s", "planned_usd", "actual_usd", "sites",
        "error",
    ]  # fmt: skip
    assert (run["id"], run["pipeline"], run["status"], run["sites"]) == (
        report["run_id"],
        "flow",
        "succeeded",
        ["cheap"],
    )
    assert run["planned_usd"] > 0
    assert run["actual_usd"] > 0
    assert run["duration_s"] > 0
    assert run["finished"] > run["started"]
    table = stratus_cli("runs", "ls", cwd=world.parent).stdout
    assert report["run_id"] in table
    assert "succeeded" in table
    assert "planned" in table


def test_show_gives_steps_transfers_and_replans(done: tuple[Path, dict[str, Any]]) -> None:
    world, report = done
    result = stratus_cli("runs", "show", report["run_id"], "--json", cwd=world.parent)
    assert result.returncode == 0, result.stderr
    detail = one_json(result.stdout)
    assert detail["run"]["id"] == report["run_id"]
    assert [
        (s["name"], s["status"], s["site"], s["offering"], len(s["attempts"])) for s in detail["steps"]
    ] == [
        ("dataset:numbers", "succeeded", "cheap", "make", 1),  # making the demo dataset is in the run too
        ("square", "succeeded", "cheap", "node-cheap", 1),
        ("total", "succeeded", "cheap", "node-cheap", 1),
        ("evens", "succeeded", "cheap", "node-cheap", 1),
        ("combine", "succeeded", "cheap", "node-cheap", 1),
    ]
    combine = detail["steps"][4]
    assert combine["metrics"] == {"auc": 0.875, "evens": 25}
    assert combine["attempts"][0]["log_path"].endswith("/combine/attempt-1/step.log")
    assert [(t["artifact"], t["from_site"], t["to_site"], t["reason"]) for t in detail["transfers"]] == [
        ("square.squares", "cheap", "vault", "replica (dual-write)")
    ]
    assert detail["replans"] == []
    text = stratus_cli("runs", "show", report["run_id"], cwd=world.parent).stdout
    assert "auc=0.875" in text
    assert "re-plans: none" in text
    assert "square.squares" in text


def test_logs_prints_what_steps_logged(done: tuple[Path, dict[str, Any]]) -> None:
    world, report = done
    result = stratus_cli("runs", "logs", report["run_id"], "square", cwd=world.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        "== square · attempt 1 at cheap ==",
        "[square] squaring 50 numbers",
    ]


def test_unknown_run_and_step_are_named(done: tuple[Path, dict[str, Any]]) -> None:
    world, report = done
    result = stratus_cli("runs", "show", "nope", cwd=world.parent)
    assert result.returncode == 2
    assert "error: RUN: no run 'nope' in " in result.stderr
    assert f"recent runs: {report['run_id']}" in result.stderr
    assert "Traceback" not in result.stderr
    result = stratus_cli("runs", "logs", report["run_id"], "nope", cwd=world.parent)
    assert result.returncode == 2
    assert (
        f"STEP: run {report['run_id']} has no step 'nope'; "
        "its steps: dataset:numbers, square, total, evens, combine" in (result.stderr.replace("\n", " "))
    )


def test_the_platform_variable_finds_the_runs(done: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    world, report = done
    env = {**cli_env(), "STRATUS_PLATFORM": str(world.parent / "stratus.yaml")}
    listed = subprocess.run(
        [sys.executable, "-m", "stratus", "runs", "ls", "--json"],
        cwd=tmp_path,  # no stratus.yaml here
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in one_json(listed.stdout)["runs"]] == [report["run_id"]]


def test_no_runs_yet_creates_nothing(tmp_path: Path) -> None:
    write_world(tmp_path)
    result = stratus_cli("runs", "ls", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no runs yet beside" in result.stdout
    assert not (tmp_path / ".stratus").exists()


def _wait_for(predicate: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_cancel_stops_a_running_run_and_follow_ends_with_it(tmp_path: Path) -> None:
    spec = pipeline(square={"params": {"sleep": 120}})
    world = write_world(tmp_path, pipeline_spec=spec)
    runner = subprocess.Popen(
        [sys.executable, "-m", "stratus", "run", str(world)],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    follower: subprocess.Popen[str] | None = None
    try:

        def square_running() -> str | None:
            listed = stratus_cli("runs", "ls", "--json", cwd=tmp_path)
            runs = one_json(listed.stdout)["runs"] if listed.returncode == 0 else []
            if not runs:
                return None
            shown = one_json(stratus_cli("runs", "show", runs[0]["id"], "--json", cwd=tmp_path).stdout)
            steps = {s["name"]: s["status"] for s in shown["steps"]}
            logs = [s["attempts"][0]["log_path"] for s in shown["steps"] if s["name"] == "square"]
            log = Path(logs[0]) if logs else None
            ready = steps.get("square") == "running" and log is not None and log.is_file()
            return runs[0]["id"] if ready and "squaring" in log.read_text() else None

        run_id = _wait_for(square_running, "square to be running")
        follower = subprocess.Popen(
            [sys.executable, "-m", "stratus", "runs", "logs", run_id, "--follow"],
            cwd=tmp_path,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        cancelled = stratus_cli("runs", "cancel", run_id, cwd=tmp_path)
        assert cancelled.returncode == 0, cancelled.stderr
        assert f"run {run_id} cancelled" in cancelled.stdout
        _out, err = runner.communicate(timeout=60)
        assert runner.returncode == 1, err
        followed, _ = follower.communicate(timeout=60)
        assert follower.returncode == 0
        assert "[square] squaring 50 numbers" in followed  # it printed the log, then ended with the run
    finally:
        for process in (runner, follower):
            if process is not None and process.poll() is None:
                os.kill(process.pid, 9)
                process.wait()
    detail = one_json(stratus_cli("runs", "show", run_id, "--json", cwd=tmp_path).stdout)
    assert detail["run"]["status"] == "cancelled"
    assert detail["run"]["error"].startswith("cancelled by ")
    steps = [(s["name"], s["status"]) for s in detail["steps"]]
    assert steps == [("dataset:numbers", "succeeded"), ("square", "cancelled")]
    assert not list((tmp_path / ".stratus" / "runs" / run_id / "square").glob("*/outputs/squares"))
    again = stratus_cli("runs", "cancel", run_id, cwd=tmp_path)
    assert again.returncode == 0
    assert f"run {run_id} has already ended (cancelled); nothing to cancel" in again.stdout
