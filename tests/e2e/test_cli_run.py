"""``stratus run`` as a user runs it: the --json object's exact shape, the words on screen, exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.run_world import one_json, pipeline, stratus_cli, write_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_world(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def first(world: Path) -> tuple[dict[str, Any], str]:
    result = stratus_cli("run", world, "--json", cwd=world.parent)
    assert result.returncode == 0, result.stderr
    return one_json(result.stdout), result.stderr


def test_json_is_one_object_with_the_documented_shape(first: tuple[dict[str, Any], str]) -> None:
    payload, _ = first
    assert list(payload) == [
        "run_id",
        "status",
        "steps",
        "artifacts",
        "cost_usd",
        "waited_for",
        "sites_down",
        "replans",
        "size_estimates",  # outputs declared >10x off their measured size (square.squares here)
    ]
    assert payload["waited_for"] is None
    assert payload["sites_down"] == payload["replans"] == []
    assert payload["status"] == "succeeded"
    assert isinstance(payload["cost_usd"], float)
    assert payload["cost_usd"] > 0
    for step in payload["steps"]:
        assert list(step) == [
            "step", "site", "offering", "status", "attempts", "duration_s", "metrics", "cached_from",
            "error_class", "error", "log_path", "log_tail",
        ]  # fmt: skip
        assert (step["error_class"], step["error"], step["log_tail"]) == (None, None, [])
        assert step["log_path"].endswith(f"/{step['step']}/attempt-1/step.log")
    assert [(s["step"], s["site"], s["offering"], s["status"], s["attempts"]) for s in payload["steps"]] == [
        ("square", "cheap", "node-cheap", "succeeded", 1),
        ("total", "cheap", "node-cheap", "succeeded", 1),
        ("evens", "cheap", "node-cheap", "succeeded", 1),
        ("combine", "cheap", "node-cheap", "succeeded", 1),
    ]
    assert all(s["duration_s"] > 0 for s in payload["steps"])
    for artifact in payload["artifacts"]:
        assert list(artifact) == ["name", "sha256", "size_bytes", "replicas"]
        assert len(artifact["sha256"]) == 64
    replicas = {a["name"]: a["replicas"] for a in payload["artifacts"]}
    assert replicas == {
        "dataset:numbers": ["cheap"],
        "square.squares": ["cheap", "vault"],
        "total.sum": ["cheap"],
        "evens.evens": ["cheap"],
        "combine.report": ["cheap"],
    }


def test_progress_goes_to_stderr_with_json(first: tuple[dict[str, Any], str]) -> None:
    payload, stderr = first
    assert stderr.startswith(f"run {payload['run_id']}: 4 steps, planned $")
    assert "square" in stderr
    assert "succeeded" in stderr


def test_a_second_run_reuses_the_cache_and_says_so(world: Path, first: tuple[dict[str, Any], str]) -> None:
    result = stratus_cli("run", world, cwd=world.parent)
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert f"All 4 steps reused from the cache (run {first[0]['run_id']}): nothing was recomputed." in out
    assert "combine: auc=0.875, evens=25" in out  # the steps' metrics are shown
    assert "cost $0.000000" in out


def test_a_failed_run_exits_1_with_the_cause_and_how_to_resume(tmp_path: Path) -> None:
    flaky = {"run": "flow_steps:flaky", "params": {"marker": str(tmp_path / "m"), "fail_times": 9}}
    world = write_world(tmp_path, pipeline_spec=pipeline(square={**flaky, "max_attempts": 1}))
    result = stratus_cli("run", world, "--json", cwd=tmp_path)
    assert result.returncode == 1
    payload = one_json(result.stdout)
    assert payload["status"] == "failed"
    assert [s["status"] for s in payload["steps"]] == ["failed", "pending", "pending", "pending"]
    assert payload["steps"][0]["error_class"] == "user"
    assert (
        "failed: step 'square' failed in its own code, so it was not retried "
        "(set retry_on_error: true to retry it): raised RuntimeError: flaky failure 1"
        in " ".join(result.stderr.split())
    )

    human = stratus_cli("run", world, cwd=tmp_path)
    assert human.returncode == 1
    out = " ".join(human.stdout.split())
    assert "raised RuntimeError: flaky failure 2" in out
    assert "square failed at cheap: an error in the step's code after 1 attempt(s)" in out
    assert f"Fix the cause, then continue with: stratus run {world} --resume " in out


def test_an_unknown_run_to_resume_exits_1_listing_recent_runs(
    world: Path, first: tuple[dict[str, Any], str]
) -> None:
    result = stratus_cli("run", world, "--resume", "nope", cwd=world.parent)
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert message.startswith("error: no run 'nope' in the state database; recent runs: ")
    assert first[0]["run_id"] in message


def test_config_errors_exit_2_before_anything_runs(tmp_path: Path) -> None:
    typo = pipeline()
    typo["steps"]["square"]["retries"] = 3
    world = write_world(tmp_path / "typo", pipeline_spec=typo)
    result = stratus_cli("run", world, "--json", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "steps.square.retries" in result.stderr

    missing = write_world(tmp_path / "missing", pipeline_spec=pipeline(total={"run": "gone_steps:total"}))
    result = stratus_cli("run", missing, cwd=tmp_path)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert message.startswith("error: steps.total.run: module 'gone_steps' of 'gone_steps:total' not found")
    assert not (tmp_path / "missing" / ".stratus" / "runs").exists()

    result = stratus_cli("run", tmp_path / "no-such.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "pipeline file not found" in result.stderr
