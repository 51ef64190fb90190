"""Planned rows and the report: groupings sum to the micro-dollar, planned beside actual.

The plan comes from the real planner on the bundled example, so these tests also pin how the ledger
reads a Plan (placements, transfers and the reasons that name their steps).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

import stratus
from stratus import ledger
from stratus.config import Platform
from stratus.ledger import LedgerRow
from stratus.planner import Placement, Plan, Transfer
from stratus.state import Database, open_database

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud-detection"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
RISK = {"team": "risk-ml", "project": "fraud"}
GROWTH = {"team": "growth", "project": "churn"}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'state.db'}")
    yield database
    database.engine.dispose()


@pytest.fixture(scope="module")
def example() -> tuple[Platform, Plan]:
    platform = stratus.load_platform(EXAMPLE / "stratus.yaml")
    pipeline = stratus.load_pipeline(EXAMPLE / "pipeline.yaml", platform)
    return platform, stratus.plan(pipeline, platform)


def rows(db: Database) -> list[LedgerRow]:
    with db.session() as session:
        return list(session.scalars(select(LedgerRow).order_by(LedgerRow.id)))


def compute(
    db: Database,
    run: str,
    step: str,
    *,
    usd_per_hour: str,
    list_usd_per_hour: str | None = None,
    hours: float = 1.0,
    start: datetime = T0,
    site: str = "aws-us-east",
    provider: str = "aws",
    pricing: ledger.StratusPricing = "on-demand",
    tags: dict[str, str] = RISK,
) -> None:
    ledger.record_compute(
        db,
        ledger.Where(run, site, provider, "us-east-1" if provider == "aws" else "europe-west4", tags),
        step=step,
        offering="m6i.xlarge",
        pricing=pricing,
        price_per_hour_usd=Decimal(usd_per_hour),
        list_price_per_hour_usd=Decimal(list_usd_per_hour or usd_per_hour),
        seconds=hours * 3600,
        started=start,
        ended=start + timedelta(hours=hours),
    )


def planned(db: Database, run: str, *placements: Placement, at: datetime = T0) -> None:
    total = sum((p.cost_usd for p in placements), Decimal(0))
    plan = Plan("p", "cost", placements, (), total, Decimal(0), 1.0, "test", len(placements))
    ledger.record_plan(db, run_id=run, plan=plan, tags=RISK, at=at)


def placement(
    step: str, cost: str, *, start: float = 0.0, site: str = "aws-us-east", provider: str = "aws"
) -> Placement:
    price = Decimal(cost)
    return Placement(
        step, site, provider, "r", "m6i.xlarge", "on-demand", price, 1.0, price, start, start + 1
    )


# --- planned rows from a real plan --------------------------------------------------------------------------


def test_a_plan_becomes_planned_rows_that_sum_to_its_total(
    db: Database, example: tuple[Platform, Plan]
) -> None:
    platform, plan = example
    ledger.record_plan(
        db, run_id="r1", plan=plan, tags=RISK, at=T0, sites=platform.sites, accelerated_steps={"train"}
    )
    everything = rows(db)
    stored = [r for r in everything if r.service_category == "Storage"]
    found = [r for r in everything if r.service_category != "Storage"]
    assert len(found) == len(plan.placements) + len(plan.transfers)
    assert {r.kind for r in everything} == {"planned"}
    expected = sum(ledger.to_micros(p.cost_usd) for p in plan.placements) + sum(
        ledger.to_micros(t.cost_usd) for t in plan.transfers
    )
    assert sum(r.effective_cost_micro_usd for r in found) == expected
    # Each line is rounded once, so the sum is within half a micro-dollar per line of the exact total.
    assert abs(expected - plan.total_cost_usd * 1_000_000) <= Decimal(len(found)) / 2
    # A month of each priced copy the run leaves (onprem's owned disks are free and get no row).
    priced = [c for c in plan.storage if c.monthly_usd > 0]
    assert len(stored) == len(priced) > 0
    assert sum(r.effective_cost_micro_usd for r in stored) == sum(
        ledger.to_micros(c.monthly_usd) for c in priced
    )
    assert {r.pricing_unit for r in stored} == {"GB-months"}
    by_step = {r.step: r for r in found if r.service_name != "Data Transfer"}
    assert by_step["train"].service_category == "AI and Machine Learning"
    assert by_step["train"].pricing_category == "Dynamic"
    assert by_step["preprocess"].service_name == "Functions"
    assert by_step["preprocess"].pricing == "serverless"
    assert by_step["ingest"].service_category == "Compute"
    train = plan.placement("train")
    assert by_step["train"].charge_period_start == T0 + timedelta(hours=train.start_hours)
    assert by_step["train"].team == "risk-ml"


def test_planned_transfers_name_the_step_they_serve_and_the_sender(
    db: Database, example: tuple[Platform, Plan]
) -> None:
    platform, plan = example
    ledger.record_plan(db, run_id="r1", plan=plan, tags=RISK, at=T0, sites=platform.sites)
    copies = [r for r in rows(db) if r.service_name == "Data Transfer"]
    assert len(copies) == len(plan.transfers)
    for row, transfer in zip(copies, plan.transfers, strict=True):
        sender = platform.sites[transfer.from_site]
        assert (row.provider_name, row.region_id) == (sender.provider, sender.region)
        assert (row.site, row.to_site) == (transfer.from_site, transfer.to_site)
        assert row.service_category == "Networking"
        if transfer.reason.startswith("input of "):
            assert row.step == transfer.reason.removeprefix("input of ").split(",")[0].strip()
        elif transfer.reason.startswith("replica"):
            assert row.step == transfer.artifact.split(".")[0]


def test_recording_the_plan_again_replaces_it(db: Database, example: tuple[Platform, Plan]) -> None:
    platform, plan = example
    for _ in range(2):
        ledger.record_plan(db, run_id="r1", plan=plan, tags=RISK, at=T0, sites=platform.sites)
    ledger.record_plan(db, run_id="r2", plan=plan, tags=RISK, at=T0, sites=platform.sites)
    per_run = len(plan.placements) + len(plan.transfers) + sum(1 for c in plan.storage if c.monthly_usd > 0)
    assert [r.run_id for r in rows(db)].count("r1") == per_run
    assert len(rows(db)) == 2 * per_run


def test_a_transfer_from_an_unknown_site_asks_for_the_platform_sites(db: Database) -> None:
    copy = Transfer(
        "dataset:raw", "bucket-site", "aws-us-east", 1.0, Decimal("0.09"), Decimal("0.09"), "input of a"
    )
    plan = Plan("p", "cost", (placement("a", "1"),), (copy,), Decimal(1), Decimal("0.09"), 1.0, "test", 1)
    with pytest.raises(ValueError, match=r"transfer from site 'bucket-site'.*pass sites=platform\.sites"):
        ledger.record_plan(db, run_id="r1", plan=plan, tags={})
    assert rows(db) == []


# --- grouping and sums --------------------------------------------------------------------------------------


def populate(db: Database) -> None:
    """Two runs; r2 by two teams on two providers, with spot savings and a step over plan."""
    planned(db, "r1", placement("ingest", "0.5"), placement("train", "2", start=1))
    compute(db, "r1", "ingest", usd_per_hour="0.4", start=T0)
    compute(db, "r1", "train", usd_per_hour="2.5", start=T0 + timedelta(hours=1))

    later = T0 + timedelta(days=1)
    planned(
        db,
        "r2",
        placement("ingest", "0.100001"),
        placement("train", "3", start=1, site="gcp-eu-west", provider="gcp"),
        placement("report", "0.2", start=3),
        at=later,
    )
    compute(db, "r2", "ingest", usd_per_hour="0.123457", start=later)
    compute(
        db,
        "r2",
        "train",
        usd_per_hour="0.9",
        list_usd_per_hour="3",
        hours=2,
        start=later + timedelta(hours=1),
        site="gcp-eu-west",
        provider="gcp",
        pricing="spot",
    )
    compute(db, "r2", "report", usd_per_hour="0.2", start=later + timedelta(hours=3), tags=GROWTH)
    ledger.record_transfer(
        db,
        ledger.Where("r2", "gcp-eu-west", "gcp", "europe-west4", GROWTH),
        step="report",
        artifact="train.model",
        to_site="aws-us-east",
        size_bytes=250_000_000,  # 0.25 GB (decimal) x 0.12 = 0.03
        usd_per_gb=Decimal("0.12"),
        at=later + timedelta(hours=3),
    )


def test_report_by_step_puts_planned_actual_and_list_side_by_side(db: Database) -> None:
    populate(db)
    result = ledger.report(db, by=["step"], run_id="r2")
    assert result.by == ("step",)
    assert [r.group for r in result.rows] == [("ingest",), ("train",), ("report",)]
    ingest, train, report = result.rows
    assert (ingest.planned_usd, ingest.actual_usd, ingest.list_usd) == (
        Decimal("0.100001"),
        Decimal("0.123457"),
        Decimal("0.123457"),
    )
    assert (train.planned_usd, train.actual_usd, train.list_usd) == (Decimal(3), Decimal("1.8"), Decimal(6))
    assert train.delta_usd == Decimal("-1.2")
    # report: 0.2 compute + 0.25 GiB × 0.12 = 0.03 transfer.
    assert (report.planned_usd, report.actual_usd) == (Decimal("0.2"), Decimal("0.23"))
    assert result.totals.planned_micro_usd == 3_300_001
    assert result.totals.actual_micro_usd == 2_153_457
    assert result.totals.list_micro_usd == 6_353_457


def test_report_by_team_and_provider_across_all_runs(db: Database) -> None:
    populate(db)
    result = ledger.report(db, by=["team", "provider"], run_id=None)
    amounts = {r.group: (r.planned_micro_usd, r.actual_micro_usd) for r in result.rows}
    assert amounts == {
        ("risk-ml", "aws"): (500_000 + 2_000_000 + 100_001 + 200_000, 400_000 + 2_500_000 + 123_457),
        ("risk-ml", "gcp"): (3_000_000, 1_800_000),
        ("growth", "aws"): (0, 200_000),
        ("growth", "gcp"): (0, 30_000),
    }
    assert result.totals.actual_micro_usd == sum(a for _, a in amounts.values())
    assert result.run_id is None


def test_report_by_nothing_is_one_total_line(db: Database) -> None:
    populate(db)
    result = ledger.report(db, by=[], run_id="r1")
    assert [(r.group, r.planned_usd, r.actual_usd) for r in result.rows] == [
        ((), Decimal("2.5"), Decimal("2.9"))
    ]
    assert result.totals == result.rows[0]


def test_report_by_pricing_and_category(db: Database) -> None:
    populate(db)
    result = ledger.report(db, by=["pricing", "category"], run_id="r2")
    actual = {r.group: r.actual_micro_usd for r in result.rows if r.actual_micro_usd}
    assert actual == {
        ("on-demand", "Compute"): 123_457 + 200_000,
        ("spot", "Compute"): 1_800_000,
        ("on-demand", "Networking"): 30_000,
    }


def test_group_names_are_checked_and_normalised() -> None:
    assert ledger.check_group_by([" Team", "provider", "team", ""]) == ("team", "provider")
    with pytest.raises(ValueError, match="cannot group by 'zone'; expected any of team, project, provider"):
        ledger.check_group_by(["zone"])
    assert set(ledger.GROUP_BY) >= {"team", "project", "provider", "site", "step"}


def test_latest_run_is_the_one_that_started_last(db: Database) -> None:
    assert ledger.latest_run_id(db) is None
    populate(db)
    assert ledger.latest_run_id(db) == "r2"
    assert ledger.run_ids(db) == ["r2", "r1"]


def test_an_empty_ledger_gives_an_empty_report(db: Database) -> None:
    result = ledger.report(db, by=["step"], run_id=None)
    assert result.empty
    assert result.totals.actual_micro_usd == 0
    assert result.to_json()["rows"] == []


# --- serialisation ------------------------------------------------------------------------------------------


def test_report_json_is_rows_of_groups_and_amounts_with_totals(db: Database) -> None:
    populate(db)
    payload = ledger.report(db, by=["team", "step"], run_id="r2").to_json()
    assert payload["run_id"] == "r2"
    assert payload["by"] == ["team", "step"]
    assert payload["currency"] == "USD"
    assert payload["rows"][0] == {
        "team": "risk-ml",
        "step": "ingest",
        "planned_usd": 0.100001,
        "actual_usd": 0.123457,
        "list_usd": 0.123457,
    }
    assert payload["totals"] == {"planned_usd": 3.300001, "actual_usd": 2.153457, "list_usd": 6.353457}


def test_report_csv_has_the_group_columns_then_exact_dollars(db: Database) -> None:
    populate(db)
    text = ledger.report(db, by=["step"], run_id="r2").to_csv()
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == ["step", "planned_usd", "actual_usd", "list_usd"]
    assert parsed[1] == ["ingest", "0.100001", "0.123457", "0.123457"]
    assert len(parsed) == 4
