"""The shipped CI template (examples/ci/github-actions.yml) is a valid workflow and its commands work.

The file is linted against GitHub's workflow schema (check-jsonschema's bundled copy), and every ``run:``
step is run exactly as written, in order, with the env the workflow sets, against the example's local
default platform (a copy of examples/, so the repository's own .stratus is not touched): train on a GCP
site, evaluate against the threshold, serve on the AWS site, promote and roll, score through the endpoint.
Two things differ from a runner, and only these: the install step is skipped (this environment is
installed), and ``SERVE_PORT`` is a free port rather than the file's, so a busy port cannot fail the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from stratus.processes import free_ports
from tests.run_world import cli_env, one_json, stratus_cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"
ACTOR = "octocat"
_EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    checker = Path(sys.executable).with_name("check-jsonschema")
    return subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def expand(text: str) -> str:
    """The one expression the template uses (``github.actor``); any other is a test to extend."""

    def value(match: re.Match[str]) -> str:
        assert match.group(1) == "github.actor", f"the test does not evaluate ${{{{ {match.group(1)} }}}}"
        return ACTOR

    return _EXPRESSION.sub(value, text)


def test_the_template_is_a_valid_workflow_and_a_broken_one_is_caught(tmp_path: Path) -> None:
    checked = lint(WORKFLOW)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    del broken["jobs"]["release"]["runs-on"]  # every job needs a runner
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    refused = lint(tmp_path / "broken.yml")
    assert refused.returncode == 1
    assert "runs-on" in refused.stdout


def test_every_run_step_works_against_the_local_default_platform(tmp_path: Path) -> None:
    workflow: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["release"]
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns(".stratus"))
    (port,) = free_ports(1)
    env = {**cli_env(), **{k: expand(str(v)) for k, v in {**workflow["env"], **job.get("env", {})}.items()}}
    env["SERVE_PORT"] = str(port)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `stratus` and `python`
    steps = [s for s in job["steps"] if "run" in s and s.get("id") != "install"]
    assert [s["name"] for s in steps] == [
        "Train on GCP and register as staging",
        "Evaluate against the threshold",
        "Start the AWS endpoint on the first release",
        "Promote to production and roll the AWS endpoint",
        "Score through the endpoint",
    ]
    platform = tmp_path / env["STRATUS_PLATFORM"]
    outputs: dict[str, str] = {}
    try:
        for step in steps:
            step_env = {**env, **{k: expand(str(v)) for k, v in step.get("env", {}).items()}}
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", expand(step["run"])],
                cwd=tmp_path,
                env=step_env,
                capture_output=True,
                text=True,
                timeout=400,
                check=False,
            )
            assert done.returncode == 0, f"{step['name']}:\n{done.stdout}\n{done.stderr}"
            outputs[step["name"]] = done.stdout
    finally:
        stratus_cli("serve", "stop", "--name", "fraud-ci", "--platform", platform, cwd=tmp_path)
    assert re.search(r"AUC 0\.\d+ >= 0\.8000", outputs["Evaluate against the threshold"])
    promoted = " ".join(outputs["Promote to production and roll the AWS endpoint"].split())
    assert "rolled fraud-ci at aws-us-east" in promoted
    assert f"fraud-ci@production → v1 (new alias), promoted by github-actions/{ACTOR}" in promoted
    assert outputs["Score through the endpoint"].count("aws-us-east") == 6  # every answer, from AWS
    shown = stratus_cli(
        "models", "show", "fraud-ci", "--alias", "production", "--json", "--platform", platform, cwd=tmp_path
    )
    selected = one_json(shown.stdout)["selected"]
    assert "gcp-eu-west" in selected["lineage"]["sites"]  # trained on GCP (exported where it serves)
    assert selected["promotions"]["production"]["sites"] == ["aws-us-east"]
