"""``stratus cost`` as a user runs it: a real subprocess against a ledger written by the public functions.

The ledger holds the bundled example's real plan for two runs and actual rows of every kind, in a
temporary platform folder's ``.stratus/state.db``, exactly where ``stratus run`` will write it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import stratus
from stratus import ledger
from stratus.state import default_url, open_database
from stratus.units import format_usd

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "fraud-detection"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
GIB = 1024**3


def stratus_cli(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m stratus ARGS`` the way a shell would; wide columns so rich does not wrap.

    A STRATUS_STATE_URL from the developer's shell is dropped so it cannot redirect the test.
    """
    inherited = {k: v for k, v in os.environ.items() if k != "STRATUS_STATE_URL"}
    environment = {**inherited, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "stratus", *map(str, args)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def flat(text: str) -> str:
    """Whitespace and box-drawing folded, so assertions survive rich's layout."""
    box = "│┃╭╮╰╯─━┏┓┗┛┡┩└┘├┤┼╇┳┻╋"
    return " ".join(text.translate(str.maketrans(box, " " * len(box))).split())


def one_json_object(stdout: str) -> dict[str, Any]:
    payload, end = json.JSONDecoder().raw_decode(stdout.lstrip())
    assert stdout.lstrip()[end:].strip() == "", f"more than one JSON value on stdout:\n{stdout}"
    assert isinstance(payload, dict)
    return payload


def populate(folder: Path) -> dict[str, int]:
    """Two runs of the example (r-old a day before r-new); returns r-new's expected micro-dollars."""
    platform = stratus.load_platform(folder / "stratus.yaml")
    pipeline = stratus.load_pipeline(EXAMPLE / "pipeline.yaml", platform)
    plan = stratus.plan(pipeline, platform)
    db = open_database(default_url(folder / ".stratus"))
    tags = pipeline.tags
    for run, start in (("r-old", T0 - timedelta(days=1)), ("r-new", T0)):
        ledger.record_plan(
            db, run_id=run, plan=plan, tags=tags, at=start, sites=platform.sites, accelerated_steps={"train"}
        )
        ledger.record_compute(
            db,
            ledger.Where(run, "gcp-eu-west", "gcp", "europe-west4", tags),
            step="train",
            offering="g2-standard-4",
            pricing="spot",
            price_per_hour_usd=Decimal("0.3153"),
            list_price_per_hour_usd=Decimal("0.80"),
            seconds=9000.0,
            started=start,
            ended=start + timedelta(hours=2.5),
            accelerator="L4:1",
        )
    ledger.record_function(
        db,
        ledger.Where("r-new", "gcp-eu-functions", "gcp", "europe-west4", tags),
        step="preprocess",
        gb_seconds=1200.0,
        requests=1,
        usd_per_gb_second=Decimal("0.000024"),
        usd_per_request=Decimal("0.0000004"),
        started=T0,
        ended=T0 + timedelta(minutes=5),
    )
    ledger.record_transfer(
        db,
        ledger.Where("r-new", "gcp-eu-west", "gcp", "europe-west4", tags),
        step="ingest",
        artifact="ingest.transactions",
        to_site="onprem-eu-gpu",
        size_bytes=1_500_000_000,  # 1.5 GB (decimal): 0.03 USD at 0.02/GB
        usd_per_gb=Decimal("0.02"),
        at=T0,
    )
    ledger.record_storage(
        db,
        ledger.Where("r-new", "gcp-eu-west", "gcp", "europe-west4", tags),
        artifact="ingest.transactions",
        size_bytes=3 * GIB // 2,
        start=T0,
        end=T0 + timedelta(hours=730),
    )
    db.engine.dispose()
    planned = (
        sum(ledger.to_micros(p.cost_usd) for p in plan.placements)
        + sum(ledger.to_micros(t.cost_usd) for t in plan.transfers)
        + sum(ledger.to_micros(c.monthly_usd) for c in plan.storage if c.monthly_usd > 0)  # a month each
    )
    # train 788 250 + function 28 800 (+0.4 µ$ request) + transfer 30 000 + storage 30 000 (1.5 GiB-month
    # at GCS europe-west4's 0.020 USD/GiB-month).
    return {"planned": planned, "actual": 877_050, "list": 2_000_000 + 28_800 + 30_000 + 30_000}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    folder = tmp_path_factory.mktemp("platform")
    shutil.copy(EXAMPLE / "stratus.yaml", folder / "stratus.yaml")
    return folder, populate(folder)


def micros(usd: float) -> int:
    return ledger.to_micros(Decimal(str(usd)))


# --- report -------------------------------------------------------------------------------------------------


def test_json_report_of_the_latest_run_by_step(site: tuple[Path, dict[str, int]]) -> None:
    folder, expected = site
    result = stratus_cli("cost", "report", "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    payload = one_json_object(result.stdout)
    assert payload["run_id"] == "r-new"
    assert payload["by"] == ["step"]
    totals = payload["totals"]
    assert (micros(totals["planned_usd"]), micros(totals["actual_usd"]), micros(totals["list_usd"])) == (
        expected["planned"],
        expected["actual"],
        expected["list"],
    )
    train = next(r for r in payload["rows"] if r["step"] == "train")
    assert (train["actual_usd"], train["list_usd"]) == (0.78825, 2.0)
    assert train["planned_usd"] > 0
    steps = [r["step"] for r in payload["rows"]]
    assert None in steps  # storage belongs to no step
    assert sum(micros(r["actual_usd"]) for r in payload["rows"]) == expected["actual"]


def test_json_report_by_team_and_project_for_a_named_run(site: tuple[Path, dict[str, int]]) -> None:
    folder, expected = site
    result = stratus_cli("cost", "report", "--by", "team,project", "--run", "r-old", "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    payload = one_json_object(result.stdout)
    assert payload["run_id"] == "r-old"
    (row,) = payload["rows"]
    assert (row["team"], row["project"]) == ("risk-ml", "fraud")
    assert micros(row["planned_usd"]) == expected["planned"]
    assert row["actual_usd"] == 0.78825


def test_all_runs_by_run(site: tuple[Path, dict[str, int]]) -> None:
    folder, expected = site
    result = stratus_cli("cost", "report", "--by", "run", "--all-runs", "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    payload = one_json_object(result.stdout)
    assert payload["run_id"] is None
    assert [r["run"] for r in payload["rows"]] == ["r-old", "r-new"]
    assert micros(payload["totals"]["planned_usd"]) == 2 * expected["planned"]


def test_table_shows_planned_and_actual_side_by_side_with_a_total(site: tuple[Path, dict[str, int]]) -> None:
    folder, expected = site
    result = stratus_cli("cost", "report", "--by", "provider,site", cwd=folder)
    assert result.returncode == 0, result.stderr
    out = flat(result.stdout)
    assert "Cost of run r-new (USD)" in out
    assert "provider site planned actual Δ vs plan list" in out
    total = (
        format_usd(ledger.from_micros(expected["planned"])),
        format_usd(ledger.from_micros(expected["actual"])),
    )
    assert f"total {total[0]} {total[1]}" in out
    assert "gcp gcp-eu-west" in out


def test_csv_report_is_the_grouped_rows(site: tuple[Path, dict[str, int]]) -> None:
    folder, _ = site
    result = stratus_cli("cost", "report", "--by", "category", "--csv", cwd=folder)
    assert result.returncode == 0, result.stderr
    parsed = {r["category"]: r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert parsed["AI and Machine Learning"]["actual_usd"] == "0.788250"
    assert parsed["Storage"]["actual_usd"] == "0.030000"
    assert parsed["Networking"]["actual_usd"] == "0.030000"


def test_state_url_from_the_environment(site: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    folder, expected = site
    url = default_url(folder / ".stratus")
    result = stratus_cli("cost", "report", "--by", "", "--json", cwd=tmp_path, env={"STRATUS_STATE_URL": url})
    assert result.returncode == 0, result.stderr
    assert micros(one_json_object(result.stdout)["totals"]["actual_usd"]) == expected["actual"]


# --- export -------------------------------------------------------------------------------------------------


def test_export_writes_focus_csv_of_actual_rows(site: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    folder, _ = site
    target = tmp_path / "costs.csv"
    result = stratus_cli("cost", "export", "-o", target, "--platform", folder / "stratus.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    reader = csv.DictReader(io.StringIO(target.read_text(encoding="utf-8")))
    assert reader.fieldnames == list(ledger.FOCUS_COLUMNS)
    found = list(reader)
    assert {r["x_RunId"] for r in found} == {"r-new"}
    # gcp bills per GiB: its transfer and storage rows say so (PricingUnit GiB, GiB-months).
    assert sorted(r["PricingUnit"] for r in found) == ["GB-seconds", "GiB", "GiB-months", "hours", "requests"]
    assert {r["x_Kind"] for r in found} == {"compute", "transfer", "storage"}


# --- mistakes and empty ledgers -----------------------------------------------------------------------------


def test_an_unknown_grouping_lists_the_valid_ones(site: tuple[Path, dict[str, int]]) -> None:
    folder, _ = site
    result = stratus_cli("cost", "report", "--by", "team,zone", cwd=folder)
    assert result.returncode == 2
    expected = (
        "--by: cannot group by 'zone'; expected any of team, project, provider, region, site, run, step"
    )
    assert expected in flat(result.stderr)
    assert "Traceback" not in result.stderr


def test_an_unknown_run_lists_the_known_ones(site: tuple[Path, dict[str, int]]) -> None:
    folder, _ = site
    result = stratus_cli("cost", "report", "--run", "r-missing", cwd=folder)
    assert result.returncode == 2
    expected = "run 'r-missing' has no ledger rows; runs with costs, latest first: r-new, r-old"
    assert expected in flat(result.stderr)


def test_json_and_csv_together_is_a_usage_error(site: tuple[Path, dict[str, int]]) -> None:
    folder, _ = site
    result = stratus_cli("cost", "report", "--json", "--csv", cwd=folder)
    assert result.returncode == 2
    assert "choose one of --json and --csv" in flat(result.stderr)


def test_no_ledger_yet_is_a_friendly_message_and_creates_nothing(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / "stratus.yaml", tmp_path / "stratus.yaml")
    result = stratus_cli("cost", "report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "No costs recorded yet" in flat(result.stdout)
    assert not (tmp_path / ".stratus").exists()
    as_json = stratus_cli("cost", "report", "--json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert one_json_object(as_json.stdout)["rows"] == []


def test_no_platform_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    result = stratus_cli("cost", "report", cwd=tmp_path)
    assert result.returncode == 2
    assert "no platform file at stratus.yaml" in flat(result.stderr)
    assert "--state-url URL" in flat(result.stderr)
