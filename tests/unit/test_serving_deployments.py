"""Choosing among a platform's deployments by name, and the scale request files the supervisor answers.

Real record files in a temporary serving folder; no process runs (the supervisor's side of a scale is
driven by hand: ``take`` and ``answer`` are exactly what its scale thread calls).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from stratus.errors import ConfigError, ServingError
from stratus.serving.control import answer, submit, take, wait_answer
from stratus.serving.deployment import SiteProcess, save_deployment
from stratus.serving.deployments import choose_deployment, deployment_folder, list_deployments
from stratus.serving.roller import RollPlan
from tests.unit.test_serving_fleet_record import record


def recorded(folder: Path, name: str, model: str = "m") -> None:
    deployment = dataclasses.replace(record(folder, server_pid=0, gateway_pid=0), name=name, model=model)
    save_deployment(deployment)


def test_each_deployment_is_found_by_name_and_an_old_unnamed_record_by_its_model(tmp_path: Path) -> None:
    root = tmp_path / "serve"
    recorded(root, "", model="legacy")  # where a version with one deployment per platform wrote it
    recorded(deployment_folder(root, "fraud"), "fraud")
    recorded(deployment_folder(root, "churn"), "churn")
    (root / "models").mkdir()  # staged models and other folders without a record are not deployments
    assert [item.name for item in list_deployments(root)] == ["churn", "fraud", "legacy"]
    chosen = choose_deployment(root, "fraud")
    assert chosen is not None
    assert chosen.folder == root / "fraud"
    legacy = choose_deployment(root, "legacy")
    assert legacy is not None
    assert legacy.folder == root

    with pytest.raises(ConfigError) as several:
        choose_deployment(root, None)
    assert str(several.value) == (
        "--name: 3 deployments are recorded here (churn, fraud, legacy): name one with --name"
    )
    with pytest.raises(ConfigError) as unknown:
        choose_deployment(root, "nope")
    assert str(unknown.value) == "--name: no deployment named 'nope'; deployments: churn, fraud, legacy"
    with pytest.raises(ConfigError) as unsafe:
        deployment_folder(root, "../elsewhere")
    assert str(unsafe.value).startswith("--name: '../elsewhere' is not a usable name; expected letters")


def test_the_only_deployment_is_meant_without_a_name(tmp_path: Path) -> None:
    root = tmp_path / "serve"
    assert choose_deployment(root, None) is None  # nothing served yet: not an error
    recorded(deployment_folder(root, "fraud"), "fraud")
    only = choose_deployment(root, None)
    assert only is not None
    assert only.name == "fraud"


def test_replicas_are_backends_named_after_their_site(tmp_path: Path) -> None:
    deployment = record(tmp_path, server_pid=0, gateway_pid=0)
    second = SiteProcess("eu", 9003, 0, "eu~2.log", [], "m.onnx", 0.5, replica=2)
    deployment.sites[second.name] = second
    assert second.name == "eu~2"
    assert deployment.site_names == ["eu", "us"]
    assert [s.name for s in deployment.replicas("eu")] == ["eu", "eu~2"]
    assert deployment.to_json()["replicas"] == {"eu": 2, "us": 1}


def test_a_scale_request_is_taken_once_and_answered_to_the_cli_that_waits(tmp_path: Path) -> None:
    request = submit(tmp_path, "scale", {"site": "eu", "replicas": 3})
    with pytest.raises(ServingError) as busy:
        submit(tmp_path, "scale", {"site": "us", "replicas": 2})
    assert busy.value.status == 409
    assert "another scale or roll of this deployment is waiting" in busy.value.detail
    taken = take(tmp_path)
    assert taken == request
    assert take(tmp_path) is None  # done once
    answer(tmp_path, taken, {"ok": True, "after": 3})
    assert wait_answer(tmp_path, request, lambda: True, timeout_s=5) == {"ok": True, "after": 3}
    assert list(tmp_path.iterdir()) == []  # no request, answer or temporary file left behind


def test_a_dead_supervisor_ends_the_wait_and_withdraws_the_request(tmp_path: Path) -> None:
    request = submit(tmp_path, "scale", {"site": "eu", "replicas": 2})
    with pytest.raises(ServingError) as dead:
        wait_answer(tmp_path, request, lambda: False, timeout_s=5)
    assert "the deployment's supervisor stopped before it answered the scale" in dead.value.detail
    assert take(tmp_path) is None  # a supervisor started later does not act on it


def test_a_roll_request_carries_its_plan_and_a_foreign_request_is_dropped(tmp_path: Path) -> None:
    plan = RollPlan(("eu", "us"), {"eu": Path("/m/eu.onnx"), "us": Path("/m/us.onnx")}, "3", "v3", 2.0, 0.1)
    request = submit(tmp_path, "roll", plan.to_params())
    taken = take(tmp_path)
    assert taken is not None
    assert taken.kind == "roll"
    assert RollPlan.from_params(taken.params) == plan
    (tmp_path / "scale-request.json").write_text('{"id": "x", "kind": "explode", "params": {}}')
    assert take(tmp_path) is None  # not a kind the supervisor knows: nobody waits for it
    with pytest.raises(ServingError) as bad:
        RollPlan.from_params({"sites": ["eu"], "paths": {}})
    assert "the roll names no model file for eu" in bad.value.detail
    with pytest.raises(ServingError) as dead:
        wait_answer(tmp_path, request, lambda: False, timeout_s=5)
    assert "the deployment's supervisor stopped before it answered the roll" in dead.value.detail
