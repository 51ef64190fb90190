"""``stratus k8s render`` as a user runs it: the fraud example for two contexts, and the usage errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.run_world import stratus_cli

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud-detection"


def test_render_writes_validated_yaml_per_context_for_the_pipeline_and_its_serving(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / "pipeline.yaml", tmp_path / "pipeline.yaml")
    shutil.copy(EXAMPLE / "kubernetes.yaml", tmp_path / "stratus.yaml")
    done = stratus_cli(
        "k8s", "render", "pipeline.yaml", "-o", "out", "--run-id", "demo", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["sites"]["gcp-eu-west"] == [
        f"Job/stratus-demo-{s}" for s in ("ingest", "train", "evaluate", "export", "report")
    ]
    assert report["skipped"][0] == "preprocess at aws-eu-central: constraints.backends is serverless"
    train = yaml.safe_load((tmp_path / "out" / "gcp-eu-west" / "01-job-stratus-demo-train.yaml").read_text())
    assert train["spec"]["template"]["spec"]["nodeSelector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-l4",
        "cloud.google.com/gke-spot": "true",
    }

    served = stratus_cli("k8s", "render", "--serve", "fraud.onnx", "-o", "serve", cwd=tmp_path)
    assert served.returncode == 0, served.stderr
    assert "gcp-eu-west → serve/gcp-eu-west: InferenceService/stratus-kserve-fraud" in served.stdout
    assert sorted(p.name for p in (tmp_path / "serve" / "aws-eu-central").iterdir()) == [
        "00-deployment-stratus-serve-fraud.yaml",
        "01-service-stratus-serve-fraud.yaml",
        "02-horizontalpodautoscaler-stratus-serve-fraud.yaml",
    ]


def test_render_usage_errors_exit_2_with_the_fix(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / "pipeline.yaml", tmp_path / "pipeline.yaml")
    shutil.copy(EXAMPLE / "kubernetes.yaml", tmp_path / "stratus.yaml")
    both = stratus_cli("k8s", "render", "pipeline.yaml", "--serve", "fraud.onnx", "-o", "out", cwd=tmp_path)
    assert both.returncode == 2
    assert "give either a PIPELINE file or --serve MODEL" in both.stderr
    unknown = stratus_cli("k8s", "render", "pipeline.yaml", "-o", "out", "--sites", "azure-x", cwd=tmp_path)
    assert unknown.returncode == 2
    assert (
        "no Kubernetes site named 'azure-x'; Kubernetes sites: aws-eu-central, gcp-eu-west" in unknown.stderr
    )
    shutil.copy(EXAMPLE / "stratus.yaml", tmp_path / "stratus.yaml")  # the local-only platform
    none = stratus_cli("k8s", "render", "pipeline.yaml", "-o", "out", cwd=tmp_path)
    assert none.returncode == 2
    assert "the platform file has no site with compute.backend: kubernetes" in none.stderr
    assert "Traceback" not in none.stderr
