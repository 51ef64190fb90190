"""``stratus export kfp|argo`` as a user runs it: files written, the gaps listed, usage errors exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from kfp import components

from stratus.export.to_argo import check_workflow
from tests.run_world import stratus_cli

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud-detection"
IMAGE = "registry.example.com/stratus/fraud:0.1.0"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("pipeline.yaml", "stratus.yaml"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    return tmp_path


def test_export_kfp_json_lists_tasks_and_what_is_not_expressed(project: Path) -> None:
    done = stratus_cli(
        "export", "kfp", "pipeline.yaml", "-o", "out/pipeline.yaml", "--image", IMAGE,
        "--secret", "fraud-db:dsn=FRAUD_DB_DSN", "--json", cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    out = project / "out" / "pipeline.yaml"
    assert report["file"] == "out/pipeline.yaml"
    assert report["bytes"] == out.stat().st_size
    assert [t["name"] for t in report["tasks"]] == [
        "make_raw_transactions", "ingest", "preprocess", "train", "evaluate", "export", "report",
    ]  # fmt: skip
    assert report["tasks"][4]["after"] == ["train", "preprocess"]
    assert [g["feature"] for g in report["not_expressed"]] == [
        "replicate", "residency", "placement", "serverless", "failover", "cost",
    ]  # fmt: skip
    assert "not expressed in Kubeflow Pipelines (6):" in done.stderr
    assert "  - residency (dataset:raw_transactions): EU residency" in done.stderr
    loaded = components.load_component_from_file(str(out))
    steps = [t["name"] for t in report["tasks"][1:]]
    assert set(loaded.pipeline_spec.root.dag.tasks) == {"make-raw-transactions", *steps}


def test_export_argo_writes_a_workflow_and_says_its_size(project: Path) -> None:
    done = stratus_cli(
        "export", "argo", "pipeline.yaml", "-o", "workflow.yaml", "--image", IMAGE, cwd=project
    )
    assert done.returncode == 0, done.stderr
    size = (project / "workflow.yaml").stat().st_size
    assert f"wrote workflow.yaml ({size} bytes): 7 tasks, 7 edges, 6 things not expressed" in done.stdout
    assert "not expressed in Argo Workflows (6):" in done.stderr
    assert check_workflow((project / "workflow.yaml").read_text()).entrypoint == "pipeline"


def test_export_usage_errors_exit_2_naming_the_flag(project: Path) -> None:
    no_image = stratus_cli("export", "kfp", "pipeline.yaml", "-o", "p.yaml", cwd=project)
    assert no_image.returncode == 2
    assert (
        "error: --image: dataset 'raw_transactions' (make: fraud_steps:make_transactions)" in no_image.stderr
    )
    assert "Traceback" not in no_image.stderr
    bad = stratus_cli("export", "argo", "pipeline.yaml", "-o", "w.yaml", "--image", IMAGE, "--secret", "db",
                      cwd=project)  # fmt: skip
    assert bad.returncode == 2
    assert "error: --secret: 'db' is not SECRET:KEY=ENV" in bad.stderr
    assert not (project / "w.yaml").exists()
    assert not (project / "p.yaml").exists()
