"""``stratus plan --compare`` as a user runs it: the fraud and GPU-training examples, people's table and JSON.

The figures are the bundled catalog's: they change only when the catalog or the examples do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.run_world import REPO, one_json, stratus_cli

FRAUD = REPO / "examples" / "fraud-detection"
GPU = REPO / "examples" / "gpu-training"


def _copy(example: Path, dest: Path) -> Path:
    for path in example.iterdir():
        if path.is_file():
            shutil.copy(path, dest / path.name)
    return dest / "pipeline.yaml"


def _flat(text: str) -> str:
    return " ".join(text.translate(str.maketrans("│┃", "  ")).split())


def _rows(report: dict[str, object]) -> dict[str, dict[str, object]]:
    compare = report["compare"]
    assert isinstance(compare, dict)
    return {row["label"].split(" (")[0]: row for row in compare["rows"]}


def test_fraud_compare_json_says_the_saving_is_spot_not_placement(tmp_path: Path) -> None:
    pipeline = _copy(FRAUD, tmp_path)
    result = stratus_cli("plan", pipeline, "--compare", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = one_json(result.stdout)
    compare = report["compare"]
    # The plan itself is unchanged by --compare, and Stratus's row is that plan.
    assert compare["stratus"]["total_cost_usd"] == report["total_cost_usd"] == pytest.approx(1.147379)
    rows = _rows(report)
    assert rows["gcp only"]["total_cost_usd"] == pytest.approx(1.14945)
    assert rows["gcp only"]["stratus_saves_usd"] == pytest.approx(0.002071)
    assert rows["aws only"]["feasible"] is False
    assert "residency: reads data that must stay in EU; site is in US" in rows["aws only"]["infeasible"]
    assert "constraints.backends ['serverless']" in rows["onprem only"]["infeasible"]
    assert rows["one region: gcp/europe-west4"]["total_cost_usd"] == pytest.approx(1.14945)
    saving = compare["saving"]
    assert saving["baseline"] == "gcp only"
    assert saving["spot_usd"] == pytest.approx(1.28109)
    assert saving["placement_usd"] == pytest.approx(0.002071)
    assert saving["spot_usd"] + saving["placement_usd"] == pytest.approx(saving["total_usd"])


def test_gpu_training_compare_table_splits_spot_and_placement_across_providers(tmp_path: Path) -> None:
    pipeline = _copy(GPU, tmp_path)
    result = stratus_cli("plan", pipeline, "--compare", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = _flat(result.stdout)
    assert "What multi-cloud saves on gpu-training (objective: cost)" in out
    assert "aws only $70.770420 $27.003701 (38.2%)" in out
    assert "azure only $66.266719 $22.500000 (34.0%)" in out
    assert (
        "gcp only — — — — infeasible: train: resources: no offering with ≥64 vCPUs, ≥512 GB, A100-80GB:8"
        in out
    )
    assert (
        "Against the best single-provider plan on on-demand prices (aws only, $221.468820), Stratus saves "
        "$177.702101 (80.2%): spot $155.202101, placement across providers $22.500000." in out
    )


def test_gpu_training_compare_json_carries_the_same_rows(tmp_path: Path) -> None:
    pipeline = _copy(GPU, tmp_path)
    result = stratus_cli("plan", pipeline, "--compare", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = one_json(result.stdout)
    rows = _rows(report)
    assert set(rows) == {
        "aws only",
        "azure only",
        "gcp only",
        "one region: aws/us-west-2",
        "SkyPilot's model, re-priced",
    }
    # Stratus prepares next to the data on AWS and trains on Azure spot: no single provider can do both.
    assert report["compare"]["stratus"]["sites"] == ["aws-us-east", "azure-us-east", "azure-us-west"]
    assert rows["azure only"]["on_demand_cost_usd"] == pytest.approx(300.0508, abs=0.01)
    assert report["compare"]["saving"]["placement_usd"] == pytest.approx(22.5, abs=0.01)


def test_plan_without_compare_prints_no_comparison(tmp_path: Path) -> None:
    pipeline = _copy(GPU, tmp_path)
    result = stratus_cli("plan", pipeline, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "compare" not in one_json(result.stdout)


@pytest.mark.slow
def test_gpu_training_example_runs_on_the_embedded_local_default(tmp_path: Path) -> None:
    pipeline = _copy(GPU, tmp_path)
    result = stratus_cli("run", pipeline, "--json", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = one_json(result.stdout)
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["train"]["site"] == "azure-us-east"
    assert steps["prepare"]["site"] == "aws-us-east"
    assert steps["stage_west"]["metrics"]["roc_auc"] > 0.9
