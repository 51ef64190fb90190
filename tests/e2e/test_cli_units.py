"""Units and money as a user sees them: far-off size estimates after a run, the sizes the next plan
uses, and the monthly storage of the copies a plan leaves, through the real CLI in a subprocess."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.run_world import REPO, one_json, stratus_cli, write_world

EXAMPLE = REPO / "examples" / "fraud-detection"


def flat(text: str) -> str:
    return " ".join(text.translate(str.maketrans("│╭╮╰╯─┃━┏┓┗┛", "            ")).split())


@pytest.mark.slow
def test_a_size_estimate_far_off_is_reported_after_the_run_and_the_next_plan_uses_the_measured_one(
    tmp_path: Path,
) -> None:
    pipeline = write_world(tmp_path / "world")  # square.squares declares 0.01 GB and writes ~200 bytes
    result = stratus_cli("run", pipeline, "--json", cwd=pipeline.parent)
    assert result.returncode == 0, result.stderr
    report = one_json(result.stdout)
    (estimate,) = report["size_estimates"]
    assert estimate["artifact"] == "square.squares"
    assert estimate["declared_gb"] == 0.01
    squares = next(a for a in report["artifacts"] if a["name"] == "square.squares")
    assert estimate["measured_gb"] == squares["size_bytes"] / 1e9
    assert estimate["measured_run"] == report["run_id"]

    plan = stratus_cli("plan", pipeline, "--json", cwd=pipeline.parent)
    assert plan.returncode == 0, plan.stderr
    sizes = {s["artifact"]: s for s in one_json(plan.stdout)["sizes"]}
    assert sizes["square.squares"]["used"] == "measured"
    assert sizes["square.squares"]["used_gb"] == squares["size_bytes"] / 1e9
    assert sizes["square.squares"]["measured_run"] == report["run_id"]
    assert sizes["total.sum"]["used"] == "declared"  # declared 0: nothing to correct
    compared = stratus_cli("plan", pipeline, "--compare", "--json", cwd=pipeline.parent)
    assert compared.returncode == 0, compared.stderr
    shown = one_json(compared.stdout)  # --compare's Stratus row is priced at the sizes the plan used
    assert shown["compare"]["stratus"]["total_cost_usd"] == shown["total_cost_usd"]

    text = flat(stratus_cli("plan", pipeline, cwd=pipeline.parent).stdout)
    assert "Output sizes used (GB)" in text
    assert f"(run {report['run_id']})" in text
    assert "(measured, >10x off the declared size)" in text

    again = stratus_cli("run", pipeline, cwd=pipeline.parent)  # the text summary says the same
    assert again.returncode == 0, again.stderr
    out = flat(again.stdout)
    assert "Declared sizes far from what this run measured (fix size_gb in the pipeline):" in out
    measured = f"{squares['size_bytes'] / 1e9:.9f}".rstrip("0")  # exact decimal GB, no exponent
    ratio = 0.01 / (squares["size_bytes"] / 1e9)
    assert f"square.squares: declared 0.01 GB, measured {measured} GB ({ratio:.3g}x smaller)" in out
    assert f"planned square.squares at its measured size {measured} GB (run {report['run_id']})" in out


def test_the_plan_prices_a_month_of_every_copy_it_leaves_with_the_source(tmp_path: Path) -> None:
    for name in ("pipeline.yaml", "stratus.yaml"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    result = stratus_cli("plan", "pipeline.yaml", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    plan = one_json(result.stdout)
    at_gcp = {c["artifact"]: c for c in plan["storage"] if c["site"] == "gcp-eu-west"}
    copy = at_gcp["ingest.transactions"]
    # 1.5 GB declared at GCS Standard europe-west4, 0.020 USD per GiB-month = 0.018626 per GB-month.
    assert copy["usd_per_gb_month"] == 0.018626
    assert copy["usd_per_month"] == round(1.5 * 0.02 * 1e9 / 2**30, 6)
    assert "0.020 USD/GiB-month" in copy["source"]
    assert "cloud.google.com/storage/pricing" in copy["source"]
    on_prem = next(c for c in plan["storage"] if c["site"] == "onprem-eu-gpu")
    assert on_prem["usd_per_month"] == 0.0
    assert "owned disks" in on_prem["source"]
    each = sum(c["usd_per_month"] for c in plan["storage"])  # each rounded to the micro-dollar
    assert abs(plan["storage_usd_per_month"] - each) <= len(plan["storage"]) * 1e-6
    assert plan["storage_usd_per_month"] > 0

    text = flat(stratus_cli("plan", "pipeline.yaml", cwd=tmp_path).stdout)
    assert "Storage left behind, per month" in text
    assert f"Storage of the copies the run leaves: ${plan['storage_usd_per_month']:,.6f} per month" in text
