"""The FOCUS export: the standard's column ids exactly, decimal dollars, UTC times, planned rows apart."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from stratus import ledger
from stratus.planner import Placement, Plan
from stratus.state import Database, open_database

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TAGS = {"team": "risk-ml", "project": "fraud"}

# The FOCUS 1.3 ids the export promises, then Stratus's own x_ columns; a change here is deliberate.
EXPECTED_COLUMNS = [
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "BillingCurrency",
    "ChargeCategory",
    "ChargeFrequency",
    "ChargeDescription",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "ServiceProviderName",
    "RegionId",
    "ResourceId",
    "ResourceName",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "Tags",
    "x_Site",
    "x_ToSite",
    "x_RunId",
    "x_Step",
    "x_Team",
    "x_Project",
    "x_Kind",
    "x_Pricing",
    "x_RecordedAt",
]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'state.db'}")
    placement = Placement(
        "train", "gcp-eu-west", "gcp", "europe-west4", "g2-standard-4", "spot", Decimal("0.3153"), 3.0,
        Decimal("0.9459"),
    )  # fmt: skip
    plan = Plan("p", "cost", (placement,), (), Decimal("0.9459"), Decimal(0), 3.0, "test", 1)
    ledger.record_plan(database, run_id="r1", plan=plan, tags=TAGS, at=T0)
    ledger.record_compute(
        database,
        ledger.Where("r1", "gcp-eu-west", "gcp", "europe-west4", TAGS),
        step="train",
        offering="g2-standard-4",
        pricing="spot",
        price_per_hour_usd=Decimal("0.3153"),
        list_price_per_hour_usd=Decimal("0.80"),
        seconds=9000.0,
        started=T0,
        ended=T0 + timedelta(hours=2.5),
        accelerator="L4:1",
    )
    yield database
    database.engine.dispose()


def test_columns_are_exactly_the_focus_ids_and_x_columns() -> None:
    assert list(ledger.FOCUS_COLUMNS) == EXPECTED_COLUMNS
    custom = [c for c in ledger.FOCUS_COLUMNS if c[0].islower()]
    assert all(c.startswith("x_") for c in custom)


def test_csv_header_and_values(db: Database) -> None:
    text = ledger.to_focus_csv(ledger.focus_records(db, run_id="r1"))
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == EXPECTED_COLUMNS
    (row,) = list(reader)
    assert row["BilledCost"] == row["EffectiveCost"] == "0.788250"
    assert row["ListCost"] == "2.000000"
    assert row["PricingCategory"] == "Dynamic"
    assert (row["PricingQuantity"], row["PricingUnit"]) == ("2.5", "hours")
    assert row["ServiceCategory"] == "AI and Machine Learning"
    assert row["ChargePeriodStart"] == "2025-03-01T09:00:00Z"
    assert row["ChargePeriodEnd"] == "2025-03-01T11:30:00Z"
    assert json.loads(row["Tags"]) == TAGS
    assert (row["x_RunId"], row["x_Step"], row["x_Team"], row["x_Project"]) == (
        "r1",
        "train",
        "risk-ml",
        "fraud",
    )
    assert (row["x_Kind"], row["x_ToSite"]) == ("compute", "")


def test_planned_rows_are_left_out_unless_asked_for(db: Database) -> None:
    assert [r["x_Kind"] for r in ledger.focus_records(db, run_id=None)] == ["compute"]
    kinds = sorted(r["x_Kind"] for r in ledger.focus_records(db, run_id=None, include_planned=True))
    assert kinds == ["compute", "planned"]
    assert ledger.focus_records(db, run_id="other") == []


def test_records_carry_decimal_money_and_json_values_are_exact_strings(db: Database) -> None:
    (record,) = ledger.focus_records(db, run_id="r1")
    assert record["EffectiveCost"] == Decimal("0.788250")
    assert ledger.focus_json_value(record["EffectiveCost"]) == "0.788250"
    assert ledger.focus_json_value(record["ChargePeriodStart"]) == "2025-03-01T09:00:00Z"
    assert ledger.focus_json_value(record["Tags"]) == TAGS


def test_an_empty_export_is_just_the_header() -> None:
    assert ledger.to_focus_csv([]) == ",".join(EXPECTED_COLUMNS) + "\n"
