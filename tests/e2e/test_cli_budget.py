"""Budgets, quotas and the allocation export through the CLI, as a user runs them.

The world is tests/run_world.py's (team ``tests``, project ``flow``) with ``budgets:`` added; this
month's spend is seeded into the ledger beside it with the public ledger functions, so a plan's figures
are known to the micro-dollar before the CLI is asked.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from stratus import ledger
from stratus.ledger import Month
from stratus.state import Repository, default_url, open_database
from tests.run_world import one_json, pipeline, platform, stratus_cli, write_world

TAGS = {"team": "tests", "project": "flow"}


def world(folder: Path, *, team_usd: float, spent_usd: str, alerts: list[float] | None = None) -> Path:
    """The run world with a team budget, a project budget of $1,000, and ``spent_usd`` spent this month."""
    spec = platform()
    budget: dict[str, Any] = {"monthly_usd": team_usd}
    if alerts is not None:
        budget["alerts"] = alerts
    spec["budgets"] = {"teams": {"tests": budget}, "projects": {"flow": {"monthly_usd": 1000}}}
    flow = pipeline()
    flow["tags"] = TAGS
    path = write_world(folder, platform_spec=spec, pipeline_spec=flow)
    now = datetime.now(UTC)
    spend(folder, "seed-now", Month.of(now).start, spent_usd, TAGS)
    spend(folder, "seed-last-month", Month.of(now).start - timedelta(hours=2), "500", TAGS)
    spend(folder, "seed-other-team", Month.of(now).start, "500", {"team": "others"})
    return path


def spend(folder: Path, run: str, at: datetime, usd: str, tags: dict[str, str]) -> None:
    db = open_database(default_url(folder / ".stratus"))
    ledger.record_compute(
        db,
        ledger.Where(run, "cheap", "onprem", "dc-cheap", tags),
        step="square",
        offering="node-cheap",
        pricing="on-demand",
        price_per_hour_usd=Decimal(usd),
        list_price_per_hour_usd=Decimal(usd),
        seconds=3600.0,
        started=at,
        ended=at + timedelta(hours=1),
    )
    db.engine.dispose()


def plan_json(path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    result = stratus_cli("plan", path, "--json", *args, cwd=path.parent)
    return result.returncode, one_json(result.stdout), result.stderr


def team_line(payload: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in payload["budgets"] if b["scope"] == "team")


def audit(folder: Path) -> list[dict[str, Any]]:
    result = stratus_cli("audit", "ls", "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    records: list[dict[str, Any]] = one_json(result.stdout)["records"]
    return records


# --- plan against the budget -------------------------------------------------------------------------------


def test_under_budget_the_plan_shows_this_months_spend_of_its_team_only(tmp_path: Path) -> None:
    path = world(tmp_path, team_usd=100, spent_usd="10")
    code, payload, _ = plan_json(path)
    assert code == 0
    team = team_line(payload)
    planned = payload["total_cost_usd"]
    assert planned > 0
    # Last month's $500 and the other team's $500 are not this team's spend this month.
    assert (team["name"], team["limit_usd"], team["spent_usd"], team["planned_usd"]) == (
        "tests",
        100,
        10,
        planned,
    )
    assert team["after_plan_usd"] == pytest.approx(10 + planned)
    assert (team["alerts_reached"], team["over"], payload["over_budget"]) == ([], False, False)
    project = next(b for b in payload["budgets"] if b["scope"] == "project")
    assert (project["name"], project["spent_usd"]) == ("flow", 10)

    table = stratus_cli("plan", path, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "Budgets this month" in table.stdout
    assert "team tests" in table.stdout
    assert "$100.000000" in table.stdout


def test_a_plan_that_crosses_an_alert_says_so_and_still_plans(tmp_path: Path) -> None:
    path = world(tmp_path, team_usd=100, spent_usd="79.99", alerts=[0.5, 0.8])
    code, payload, _ = plan_json(path)
    assert code == 0
    assert team_line(payload)["alerts_reached"] == [0.5, 0.8]
    table = stratus_cli("plan", path, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "alert: this plan takes team tests past 80% of its budget" in " ".join(table.stdout.split())


def test_over_budget_plan_and_run_refuse_with_exit_7_naming_budget_spent_planned_and_limit(
    tmp_path: Path,
) -> None:
    path = world(tmp_path, team_usd=10, spent_usd="9.99")
    code, payload, stderr = plan_json(path)
    assert code == 7
    assert payload["over_budget"] is True  # the figures still reach a script, on stdout
    assert team_line(payload)["over"] is True
    message = " ".join(stderr.split())
    assert "error: over budget: team tests's monthly budget (" in message
    assert "spent $9.990000 + planned $" in message
    assert "over the limit of $10.000000 by $" in message
    assert "--allow-over-budget" in message
    assert "project flow" not in message  # within its own budget

    run = stratus_cli("run", path, cwd=tmp_path)
    assert run.returncode == 7, run.stderr
    assert "error: over budget: team tests's monthly budget" in " ".join(run.stderr.split())
    repo = Repository(open_database(default_url(tmp_path / ".stratus")))
    assert repo.runs() == []  # refused before anything was created or started
    assert not (tmp_path / "sites" / "cheap" / "objects").exists()


def test_the_override_plans_and_is_recorded_in_the_audit_trail(tmp_path: Path) -> None:
    path = world(tmp_path, team_usd=10, spent_usd="9.99")
    code, payload, stderr = plan_json(path, "--allow-over-budget")
    assert code == 0, stderr
    assert payload["over_budget"] is True
    assert "warning: over budget, going ahead because of --allow-over-budget (recorded)" in " ".join(
        stderr.split()
    )
    records = audit(tmp_path)
    override = next(r for r in records if r["command"] == "budget override")
    assert override["outcome"] == "ok"
    assert override["arguments"][0] == f"plan {path}"
    assert override["arguments"][1].startswith("team tests (")
    assert "spent $9.990000 + planned $" in override["arguments"][1]
    assert "of $10.000000" in override["arguments"][1]
    flagged = next(r for r in records if r["command"] == "plan")  # the command line itself, flag and all
    assert "--allow-over-budget" in flagged["arguments"]


def test_no_budgets_no_budget_figures_and_no_state_database_created(tmp_path: Path) -> None:
    path = write_world(tmp_path)
    code, payload, _ = plan_json(path)
    assert code == 0
    assert "budgets" not in payload
    spec = platform()
    spec["budgets"] = {"teams": {"tests": {"monthly_usd": 5}}}
    (tmp_path / "stratus.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    code, payload, _ = plan_json(path)
    assert code == 0
    assert team_line(payload)["spent_usd"] == 0
    assert not (tmp_path / ".stratus" / "state.db").exists()  # reading spend never creates a database


def test_a_step_bigger_than_its_teams_quota_is_a_plan_time_error(tmp_path: Path) -> None:
    spec = platform()
    spec["quotas"] = {"tests": {"cheap": {"vcpus": 1}}}
    flow = pipeline(square={"resources": {"cpus": 2, "memory_gb": 1}})
    path = write_world(tmp_path, platform_spec=spec, pipeline_spec=flow)
    for command in ("plan", "run"):
        result = stratus_cli(command, path, cwd=tmp_path)
        assert result.returncode == 3, result.stderr
        assert (
            "step 'square' needs 2 vCPUs at site cheap, more than team tests's quota there (vcpus: 1), so it "
            "could never start; raise quotas.tests.cheap" in " ".join(result.stderr.split())
        )


# --- the cost report and the allocation export -------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """March 2025: team tests spent $30 on onprem and $12 on aws; team others $5; $100 in February."""
    folder = tmp_path_factory.mktemp("report")
    spec = platform()
    spec["budgets"] = {
        "teams": {"tests": {"monthly_usd": 40}, "idle": {"monthly_usd": 10}},
        "projects": {"flow": {"monthly_usd": 100}},
    }
    write_world(folder, platform_spec=spec)
    march = datetime(2025, 3, 5, tzinfo=UTC)
    spend(folder, "m1", march, "30", TAGS)
    db = open_database(default_url(folder / ".stratus"))
    ledger.record_compute(
        db,
        ledger.Where("m2", "aws-gpu", "aws", "us-east-1", TAGS),
        step="train",
        offering="g6.xlarge",
        pricing="spot",
        price_per_hour_usd=Decimal("6"),
        list_price_per_hour_usd=Decimal("8"),
        seconds=7200.0,
        started=march,
        ended=march + timedelta(hours=2),
        accelerator="L4:1",
    )
    ledger.record_transfer(
        db,
        ledger.Where("m2", "cheap", "onprem", "dc-cheap", TAGS),
        step="train",
        artifact="square.squares",
        to_site="aws-gpu",
        size_bytes=10**9,  # one decimal GB, the unit usd_per_gb prices
        usd_per_gb=Decimal("0.5"),
        at=march,
    )
    db.engine.dispose()
    spend(folder, "m3", march, "5", {"team": "others", "project": "flow"})
    spend(folder, "feb", datetime(2025, 2, 10, tzinfo=UTC), "100", TAGS)
    return folder


def test_report_by_team_project_provider_for_a_month_with_budget_columns(seeded: Path) -> None:
    result = stratus_cli(
        "cost", "report", "--by", "team,project,provider", "--month", "2025-03", "--json", cwd=seeded
    )
    assert result.returncode == 0, result.stderr
    payload = one_json(result.stdout)
    assert payload["month"] == "2025-03"
    rows = {(r["team"], r["project"], r["provider"]): r["actual_usd"] for r in payload["rows"]}
    assert rows == {
        ("tests", "flow", "onprem"): 30.5,
        ("tests", "flow", "aws"): 12.0,
        ("others", "flow", "onprem"): 5.0,
    }
    budgets = {(b["scope"], b["name"]): b for b in payload["budgets"]}
    tests = budgets[("team", "tests")]
    assert (tests["budget_usd"], tests["spent_usd"], tests["remaining_usd"], tests["used_pct"]) == (
        40,
        42.5,
        -2.5,
        106.25,
    )
    assert (tests["over"], tests["alerts_reached"]) == (True, [0.5, 0.8, 1.0])
    idle = budgets[("team", "idle")]
    assert (idle["spent_usd"], idle["remaining_usd"], idle["used_pct"]) == (0, 10, 0)
    flow = budgets[("project", "flow")]
    assert (flow["spent_usd"], flow["used_pct"]) == (47.5, 47.5)

    table = stratus_cli("cost", "report", "--by", "team,project,provider", "--month", "2025-03", cwd=seeded)
    assert table.returncode == 0, table.stderr
    text = " ".join(table.stdout.split())
    assert "Cost of all runs in 2025-03" in text
    assert "Budgets, 2025-03" in text
    for heading in ("budget (USD)", "spent", "remaining", "% used"):
        assert heading in text
    assert "106.2%" in text


def test_a_month_with_no_charges_and_a_malformed_month(seeded: Path) -> None:
    result = stratus_cli("cost", "report", "--by", "team", "--month", "2024-01", "--json", cwd=seeded)
    assert result.returncode == 0, result.stderr
    payload = one_json(result.stdout)
    assert payload["rows"] == []
    assert all(b["spent_usd"] == 0 for b in payload["budgets"])
    bad = stratus_cli("cost", "report", "--month", "03/2025", cwd=seeded)
    assert bad.returncode == 2
    assert "--month: '03/2025' is not a month; expected YYYY-MM, e.g. 2025-03" in bad.stderr


def test_allocation_export_csv_has_the_focus_columns_then_opencosts(seeded: Path) -> None:
    out = seeded / "allocation.csv"
    result = stratus_cli(
        "cost", "export", "--format", "allocation", "--month", "2025-03", "-o", out, cwd=seeded
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    header = list(rows[0])
    assert header[: len(ledger.FOCUS_COLUMNS)] == list(ledger.FOCUS_COLUMNS)
    assert header[len(ledger.FOCUS_COLUMNS) :] == list(ledger.ALLOCATION_COLUMNS)
    assert {r["x_RunId"] for r in rows} == {"m1", "m2", "m3"}  # February's run is another month
    gpu = next(r for r in rows if r["x_RunId"] == "m2" and r["x_Kind"] == "compute")
    assert (gpu["properties.namespace"], gpu["properties.labels.team"], gpu["properties.labels.project"]) == (
        "tests",
        "tests",
        "flow",
    )
    assert (gpu["properties.cluster"], gpu["properties.node"], gpu["properties.pod"]) == (
        "aws-gpu",
        "g6.xlarge",
        "train",
    )
    assert (gpu["gpuCost"], gpu["cpuCost"], gpu["totalCost"], gpu["EffectiveCost"]) == (
        "12.000000",
        "0.000000",
        "12.000000",
        "12.000000",
    )
    assert gpu["minutes"] == "120.0"
    copy = next(r for r in rows if r["x_Kind"] == "transfer")
    assert (copy["networkCost"], copy["totalCost"]) == ("0.500000", "0.500000")
    for row in rows:  # every cost lands in exactly one OpenCost column
        parts = [
            Decimal(row[c])
            for c in ("cpuCost", "gpuCost", "ramCost", "pvCost", "networkCost", "externalCost")
        ]
        assert sum(parts) == Decimal(row["totalCost"]) == Decimal(row["EffectiveCost"])


def test_allocation_export_json_aggregates_by_namespace_and_project_as_opencost_does(seeded: Path) -> None:
    result = stratus_cli(
        "cost", "export", "--format", "allocation", "--month", "2025-03", "--json", cwd=seeded
    )
    assert result.returncode == 0, result.stderr
    payload = one_json(result.stdout)
    assert payload["aggregate"] == "namespace,label:project"
    assert payload["window"] == {"start": "2025-03-01T00:00:00Z", "end": "2025-04-01T00:00:00Z"}
    (allocations,) = payload["data"]
    assert set(allocations) == {"tests/flow", "others/flow"}
    tests = allocations["tests/flow"]
    assert tests["properties"]["namespace"] == "tests"
    assert tests["properties"]["labels"] == {"project": "flow"}
    assert "cluster" not in tests["properties"]  # its rows ran at two sites
    assert (tests["cpuCost"], tests["gpuCost"], tests["networkCost"], tests["totalCost"]) == (
        30.0,
        12.0,
        0.5,
        42.5,
    )
    assert allocations["others/flow"]["properties"]["cluster"] == "cheap"
    assert len(payload["rows"]) == 4
    assert payload["columns"] == [*ledger.FOCUS_COLUMNS, *ledger.ALLOCATION_COLUMNS]
    json.dumps(payload)  # plain JSON throughout


def test_an_unknown_export_format_is_a_usage_error(seeded: Path) -> None:
    result = stratus_cli("cost", "export", "--format", "kubecost", cwd=seeded)
    assert result.returncode == 2
    assert "--format: 'kubecost' is not an export format; expected focus or allocation" in result.stderr
