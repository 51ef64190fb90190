"""Policy as code through the CLI: the shipped library allowing and denying in `stratus plan --explain`,
a copy denied while a pipeline runs, a serving site denied, and `stratus policy test|eval`.

Each test runs ``stratus`` in a subprocess on a small world of local sites (tests/run_world.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.run_world import one_json, pipeline, platform, stratus_cli, write_world

pytest.importorskip("regorus", reason="the policy extra (gordon-to-regorus) is not installed")


def _governed_world(
    folder: Path, teams: dict[str, Any], tags: dict[str, str], *, gpu_step: bool = False
) -> Path:
    """run_world's sites plus a US site and an L4 site, under the shipped library and ``teams``."""
    sites = platform()
    backup = sites["sites"]["backup"]
    sites["sites"]["us"] = {**backup, "region": "dc-us", "jurisdiction": "US", "storage": "file://sites/us"}
    sites["sites"]["gpu"] = {
        **backup,
        "region": "dc-gpu",
        "storage": "file://sites/gpu",
        "offerings": [
            {
                "name": "l4-node",
                "vcpus": 8,
                "memory_gb": 32,
                "accelerators": "L4:1",
                "price_per_hour_usd": 0.7,
            }
        ],
    }
    sites["policies"] = {"modules": ["stratus:library"], "data": ["teams.yaml"]}
    (folder / "teams.yaml").write_text(yaml.safe_dump({"stratus": {"teams": {"tests": teams}}}))
    spec = pipeline(total={"spot": True})
    spec["tags"] = tags
    if gpu_step:
        spec["steps"]["evens"]["resources"] = {"cpus": 2, "memory_gb": 4, "accelerators": "L4:1"}
    return write_world(folder, pipeline_spec=spec, platform_spec=sites)


def _plan(world: Path, *extra: str) -> tuple[int, str]:
    result = stratus_cli("plan", world, "--explain", *extra, cwd=world.parent)
    assert "Traceback" not in result.stderr, result.stderr
    # Table cells wrap: drop their borders so a reason reads as one line again.
    return result.returncode, " ".join((result.stdout + result.stderr).replace("│", " ").split())


def test_the_library_allows_a_compliant_plan(tmp_path: Path) -> None:
    teams = {"providers": ["onprem"], "gpus": ["L4"], "max_usd_per_hour": 10}
    world = _governed_world(tmp_path, teams, {"team": "tests", "project": "p"}, gpu_step=True)
    code, out = _plan(world)
    assert code == 0, out
    plan = one_json(stratus_cli("plan", world, "--json", cwd=tmp_path).stdout)
    where = {s["step"]: (s["site"], s["pricing"]) for s in plan["steps"]}
    # required tags present, the provider allowed, the L4 allowed, spot allowed outside prod, under the cap:
    assert where["total"] == ("cheap", "spot")
    assert where["evens"] == ("gpu", "on-demand")
    # Residency as a policy: the US site is refused by the built-in rule and by the policy, in its words.
    assert (
        "residency: reads data that must stay in EU; site is in US; policy: residency: step square reads "
        in out
    )
    assert "data that must stay in EU; us is in US" in out
    assert "Choices denied by policy" not in out


def test_the_library_denies_with_each_policy_s_message_in_explain(tmp_path: Path) -> None:
    teams = {
        "providers": ["onprem"],
        "regions": ["dc-cheap", "dc-backup", "dc-us", "dc-gpu"],
        "max_usd_per_hour": 0.9,
    }
    world = _governed_world(tmp_path, teams, {"team": "tests", "project": "p", "tier": "prod"})
    code, out = _plan(world)
    assert code == 0, out
    # no spot for prod: the cheap site stays usable on demand, and the table says what was denied there.
    assert "Choices denied by policy (the site stays usable)" in out
    assert (
        "no_spot_prod: step total of flow is tier: prod and may not run on spot capacity "
        "(1 of the 2 cheapest choices)" in out
    )
    # allowed regions per team, and the cap per step, at the sites they rule out.
    assert (
        "policy: allowed_providers: team tests may not use region dc-vault at vault "
        "(allowed: dc-cheap, dc-backup, dc-us, dc-gpu)" in out
    )
    assert (
        "policy: max_price: step square on node-vault (on-demand) costs $5.000000/h; "
        "team tests allows at most $0.900000/h per step" in out
    )
    plan = one_json(stratus_cli("plan", world, "--json", cwd=tmp_path).stdout)
    assert {(s["step"], s["pricing"]) for s in plan["steps"]} >= {("total", "on-demand")}

    # Another provider is denied too.
    (tmp_path / "teams.yaml").write_text(
        yaml.safe_dump({"stratus": {"teams": {"tests": {"providers": ["gcp"]}}}})
    )
    code, out = _plan(world)
    assert code == 3, out
    assert "policy: allowed_providers: team tests may not use provider onprem at cheap (allowed: gcp)" in out


def test_a_step_nothing_allows_is_infeasible_with_the_policies_messages(tmp_path: Path) -> None:
    world = _governed_world(tmp_path, {"providers": ["onprem"]}, {"team": "tests"}, gpu_step=True)
    code, out = _plan(world)
    assert code == 3, out
    assert 'required_tags: pipeline flow has no "project" tag (tags required: team, project)' in out
    assert "gpu: policy: gpu_types: team tests may not use L4 GPUs (step evens; allowed: none)" in out
    assert "ask the policy's owners, or change what it denies (`stratus policy eval` shows why)" in out


def test_a_policy_that_does_not_compile_denies_every_candidate_with_its_error(tmp_path: Path) -> None:
    world = write_world(tmp_path)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "broken.rego").write_text("package stratus.policy\n\nallow if {{\n")
    sites = yaml.safe_load((tmp_path / "stratus.yaml").read_text())
    sites["policies"] = ["policies"]
    (tmp_path / "stratus.yaml").write_text(yaml.safe_dump(sites))
    code, out = _plan(world)
    assert code == 3, out
    assert "cheap: policy: the policies do not compile: policies/broken.rego:4:1: " in out


def test_a_missing_policy_path_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    world = write_world(tmp_path)
    sites = yaml.safe_load((tmp_path / "stratus.yaml").read_text())
    sites["policies"] = {"modules": ["nowhere/"]}
    (tmp_path / "stratus.yaml").write_text(yaml.safe_dump(sites, sort_keys=False))
    result = stratus_cli("plan", world, cwd=tmp_path)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "stratus.yaml" in message
    assert "policies.modules[0]: 'nowhere/' does not exist" in message or (
        "policies.modules.0: 'nowhere/' does not exist" in message
    ), message
    assert "expected a .rego file or a directory" in message


COPY_POLICY = """package stratus.policy

import rego.v1

default allow := false

allow if count(deny) == 0

deny contains msg if {
	input.decision == "run"
	input.action == "copy"
	input.to.name == "vault"
	msg := sprintf("nothing of %s goes to the vault", [input.artifact])
}

deny contains msg if {
	input.decision == "serve"
	input.site.name == "backup"
	msg := "backup serves no models"
}
"""


def _world_with(tmp_path: Path, module: str) -> Path:
    world = write_world(tmp_path)
    (tmp_path / "rules.rego").write_text(module)
    sites = yaml.safe_load((tmp_path / "stratus.yaml").read_text())
    sites["policies"] = ["rules.rego"]
    (tmp_path / "stratus.yaml").write_text(yaml.safe_dump(sites))
    return world


@pytest.mark.slow
def test_a_copy_the_policy_denies_fails_the_step_once_not_retried(tmp_path: Path) -> None:
    world = _world_with(tmp_path, COPY_POLICY)
    result = stratus_cli("run", world, "--json", cwd=tmp_path, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    report = one_json(result.stdout)
    assert report["status"] == "failed"
    square = next(s for s in report["steps"] if s["step"] == "square")
    assert square["attempts"] == 1, square  # deterministic: never retried
    assert square["error"] == (
        "PolicyError: denied by policy: copying square.squares from cheap to vault (replica (dual-write)): "
        "nothing of square.squares goes to the vault"
    )
    assert "step 'square' was refused (not retried): PolicyError" in " ".join(result.stderr.split())
    assert not any((tmp_path / "sites" / "vault").rglob("objects/*/*/*"))  # nothing was written there


def test_a_serving_site_the_policy_denies_is_refused_before_anything_starts(tmp_path: Path) -> None:
    _world_with(tmp_path, COPY_POLICY)
    (tmp_path / "model.onnx").write_bytes(b"not read: refused first")
    result = stratus_cli("serve", "model.onnx", "--sites", "cheap,backup", "--port", "18999", cwd=tmp_path)
    assert result.returncode == 6, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "denied by policy: serving model.onnx from backup: backup serves no models" in message
    assert not (tmp_path / "sites" / "backup").exists() or not any(
        (tmp_path / "sites" / "backup").rglob("*.onnx")
    )


def test_policy_test_passes_on_the_library_and_fails_on_a_failing_test(tmp_path: Path) -> None:
    result = stratus_cli("policy", "test", "stratus:library", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = one_json(result.stdout)
    assert summary["passed"] >= 26
    assert summary["failed"] == summary["errored"] == 0

    (tmp_path / "p.rego").write_text("package t\n\nimport rego.v1\n\nx := 1\n")
    (tmp_path / "p_test.rego").write_text(
        "package t_test\n\nimport rego.v1\n\nimport data.t\n\n"
        "test_x_is_one if t.x == 1\n\ntest_x_is_two if t.x == 2\n\ntest_errors if 1 / 0 == 0\n"
    )
    result = stratus_cli("policy", "test", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert "data.t_test.test_x_is_two: FAIL" in result.stdout
    assert "evaluated to undefined" in result.stdout
    assert "data.t_test.test_errors: ERROR" in result.stdout
    assert "divide by zero" in result.stdout
    assert "test_x_is_one" not in result.stdout  # passes are listed with -v only
    assert "PASS: 1/3" in result.stdout
    assert "FAIL: 2/3" in result.stdout

    result = stratus_cli("policy", "test", str(tmp_path / "empty"), cwd=tmp_path)
    assert result.returncode == 2


def test_policy_eval_answers_like_a_decision_point(tmp_path: Path) -> None:
    _world_with(tmp_path, COPY_POLICY)
    doc = {"action": "copy", "artifact": "a", "to": {"name": "vault"}}
    (tmp_path / "input.json").write_text(json.dumps(doc))
    result = stratus_cli(
        "policy", "eval", "--input", "input.json", "--decision", "run", "--json", cwd=tmp_path
    )
    assert result.returncode == 6, result.stderr
    assert one_json(result.stdout) == {
        "decision": "run",
        "allowed": False,
        "reasons": ["nothing of a goes to the vault"],
    }
    (tmp_path / "input.json").write_text(json.dumps({**doc, "to": {"name": "cheap"}}))
    result = stratus_cli("policy", "eval", "--input", "input.json", "--decision", "run", cwd=tmp_path)
    assert result.returncode == 0
    assert "run: allowed" in result.stdout
    result = stratus_cli("policy", "eval", "--input", "input.json", cwd=tmp_path)
    assert result.returncode == 2
    assert "input.decision must be one of plan, run, serve, repair; pass --decision" in result.stderr
