"""Recording usage: every kind of charge lands as one FOCUS row, exact to the micro-dollar.

A real SQLite database in tmp_path, written through the public functions and read back with a second
engine, so each assertion is about what a later process would see.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from stratus import ledger
from stratus.catalog import Catalog, Location, StorageRate
from stratus.errors import CatalogError
from stratus.ledger import LedgerRow
from stratus.ledger.record import build_row
from stratus.state import Database, open_database

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TAGS = {"team": "risk-ml", "project": "fraud", "owner": "ana"}
GIB = 1024**3


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def db(url: str) -> Iterator[Database]:
    database = open_database(url)
    yield database
    database.engine.dispose()


def read_rows(url: str) -> list[LedgerRow]:
    """What another process sees: a fresh engine, so only committed rows count."""
    other = open_database(url)
    try:
        with other.session() as session:
            return list(session.scalars(select(LedgerRow).order_by(LedgerRow.id)))
    finally:
        other.engine.dispose()


def vm(db: Database, where: ledger.Where | None = None, **overrides: object) -> None:
    where = where or ledger.Where("r1", "gcp-eu-west", "gcp", "europe-west4", TAGS)
    args: dict[str, object] = {
        "step": "ingest",
        "offering": "n2-standard-4",
        "pricing": "on-demand",
        "price_per_hour_usd": Decimal("0.213832"),
        "list_price_per_hour_usd": Decimal("0.213832"),
        "seconds": 900.0,
        "started": T0,
        "ended": T0 + timedelta(seconds=900),
    }
    args.update(overrides)
    ledger.record_compute(db, where, **args)  # type: ignore[arg-type]


# --- compute on machines ------------------------------------------------------------------------------------


def test_on_demand_compute_is_one_standard_row_with_every_focus_column(db: Database, url: str) -> None:
    vm(db)
    (row,) = read_rows(url)
    # 0.213832 $/h × 0.25 h = 0.053458 $ exactly.
    assert row.effective_cost_micro_usd == 53_458
    assert row.billed_cost_micro_usd == 53_458
    assert row.list_cost_micro_usd == 53_458
    assert row.contracted_cost_micro_usd == 53_458
    assert row.billing_currency == "USD"
    assert row.charge_category == "Usage"
    assert row.pricing_category == "Standard"
    assert row.pricing_quantity == Decimal("0.25")
    assert row.pricing_unit == "hours"
    assert row.provider_name == "gcp"
    assert row.service_provider_name == "gcp"
    assert row.region_id == "europe-west4"
    assert row.service_category == "Compute"
    assert row.service_name == "Virtual Machines"
    assert row.sku_id == "n2-standard-4"
    assert row.resource_id == "gcp-eu-west/r1/ingest"
    assert row.charge_period_start == T0
    assert row.charge_period_end == T0 + timedelta(seconds=900)
    assert row.tags == {"owner": "ana", "project": "fraud", "team": "risk-ml"}
    assert (row.site, row.run_id, row.step, row.team, row.project) == (
        "gcp-eu-west",
        "r1",
        "ingest",
        "risk-ml",
        "fraud",
    )
    assert (row.kind, row.pricing, row.to_site) == ("compute", "on-demand", None)


def test_spot_pays_the_spot_rate_and_lists_the_on_demand_one(db: Database, url: str) -> None:
    vm(
        db,
        step="train",
        offering="g2-standard-4",
        pricing="spot",
        price_per_hour_usd=Decimal("0.3153"),
        list_price_per_hour_usd=Decimal("0.80"),
        seconds=9000.0,
        ended=T0 + timedelta(hours=2.5),
        accelerator="L4:1",
    )
    (row,) = read_rows(url)
    assert row.effective_cost_micro_usd == 788_250  # 0.3153 × 2.5
    assert row.list_cost_micro_usd == 2_000_000  # 0.80 × 2.5
    assert row.pricing_category == "Dynamic"
    assert row.pricing == "spot"
    assert row.service_category == "AI and Machine Learning"


def test_reserved_capacity_is_committed_pricing(db: Database, url: str) -> None:
    vm(
        db,
        ledger.Where("r1", "onprem-eu-gpu", "onprem", "frankfurt-dc1", TAGS),
        offering="gpu-node-l4",
        pricing="reserved",
        price_per_hour_usd=Decimal("0.70"),
        list_price_per_hour_usd=Decimal("0.95"),
        seconds=3600.0,
        ended=T0 + timedelta(hours=1),
    )
    (row,) = read_rows(url)
    assert row.pricing_category == "Committed"
    assert (row.effective_cost_micro_usd, row.list_cost_micro_usd) == (700_000, 950_000)


def test_each_call_is_committed_before_it_returns(db: Database, url: str) -> None:
    vm(db)
    assert len(read_rows(url)) == 1
    vm(db, step="evaluate")
    assert [r.step for r in read_rows(url)] == ["ingest", "evaluate"]


def test_times_come_back_in_utc_whatever_zone_they_went_in(db: Database, url: str) -> None:
    paris = timezone(timedelta(hours=1))
    vm(
        db,
        started=datetime(2025, 3, 1, 10, 0, tzinfo=paris),
        ended=datetime(2025, 3, 1, 10, 15, tzinfo=paris),
    )
    (row,) = read_rows(url)
    assert row.charge_period_start == T0
    assert row.charge_period_start.tzinfo is not None
    assert row.charge_period_start.utcoffset() == timedelta(0)


# --- serverless ---------------------------------------------------------------------------------------------


def test_a_function_is_priced_per_gb_second_and_per_request(db: Database, url: str) -> None:
    ledger.record_function(
        db,
        ledger.Where("r1", "gcp-eu-functions", "gcp", "europe-west4", TAGS),
        step="preprocess",
        gb_seconds=1200.0,
        requests=3,
        usd_per_gb_second=Decimal("0.000024"),
        usd_per_request=Decimal("0.0000004"),
        started=T0,
        ended=T0 + timedelta(seconds=300),
        offering="function-4GB",
    )
    memory, calls = read_rows(url)
    assert (memory.pricing_unit, memory.pricing_quantity) == ("GB-seconds", Decimal(1200))
    assert memory.effective_cost_micro_usd == 28_800  # 1200 × 0.000024
    # 3 × 0.4 µ$ = 1.2 µ$; the pair sums to the invocation's cost rounded once: 28 801.2 → 28 801.
    assert (calls.pricing_unit, calls.pricing_quantity) == ("requests", Decimal(3))
    assert calls.effective_cost_micro_usd == 1
    for row in (memory, calls):
        assert row.service_category == "Compute"
        assert row.service_name == "Functions"
        assert row.pricing_category == "Standard"
        assert row.pricing == "serverless"
        assert row.sku_id == "function-4GB"
        assert row.kind == "compute"


def test_a_function_without_requests_writes_one_row(db: Database, url: str) -> None:
    ledger.record_function(
        db,
        ledger.Where("r1", "fn", "aws", "us-east-1", {}),
        step="preprocess",
        gb_seconds=Decimal("0.5"),
        requests=0,
        usd_per_gb_second=Decimal("0.0000166667"),
        usd_per_request=Decimal("0.0000002"),
        started=T0,
        ended=T0,
    )
    (row,) = read_rows(url)
    assert row.effective_cost_micro_usd == 8  # 8.33335 µ$ rounds to 8
    assert (row.team, row.project) == (None, None)


# --- transfers and storage ----------------------------------------------------------------------------------


def test_a_transfer_is_networking_charged_to_the_sending_site(db: Database, url: str) -> None:
    ledger.record_transfer(
        db,
        ledger.Where("r1", "aws-eu", "aws", "eu-west-1", TAGS),
        step="ingest",
        artifact="ingest.transactions",
        to_site="onprem-eu-gpu",
        size_bytes=1_500_000_000,
        usd_per_gb=Decimal("0.02"),
        at=T0,
    )
    (row,) = read_rows(url)
    assert row.effective_cost_micro_usd == 30_000  # 1.5 GB × 0.02
    assert (row.pricing_quantity, row.pricing_unit) == (Decimal("1.5"), "GB")
    assert (row.service_category, row.service_name) == ("Networking", "Data Transfer")
    assert (row.site, row.to_site, row.kind) == ("aws-eu", "onprem-eu-gpu", "transfer")
    assert row.charge_period_start == row.charge_period_end == T0


# The demo's ingest.transactions: the old ledger labelled 33,600,490 / 2^30 = 0.031293 "GB".
DEMO_BYTES = 33_600_490


def test_transfer_quantity_is_decimal_gb_for_a_provider_billing_per_gb(db: Database, url: str) -> None:
    ledger.record_transfer(
        db,
        ledger.Where("r1", "aws-us-east", "aws", "us-east-1", TAGS),
        step="ingest",
        artifact="ingest.transactions",
        to_site="gcp-eu-west",
        size_bytes=DEMO_BYTES,
        usd_per_gb=Decimal("0.09"),
        at=T0,
    )
    (row,) = read_rows(url)
    assert (row.pricing_quantity, row.pricing_unit) == (Decimal("0.03360049"), "GB")
    assert row.effective_cost_micro_usd == 3_024  # 0.03360049 GB × 0.09 = 0.0030240441
    assert "(33600490 bytes = 0.03360049 GB)" in row.charge_description


def test_transfer_from_a_provider_billing_per_gib_is_recorded_in_gib_and_says_so(
    db: Database, url: str
) -> None:
    per_gb = Catalog.bundled().egress.rate_usd_per_gb(
        Location("gcp", "europe-west4", "europe"), Location("aws", "eu-central-1", "europe")
    )
    assert per_gb == Decimal("0.12") * 10**9 / 2**30  # Google lists 0.12 per GiB
    ledger.record_transfer(
        db,
        ledger.Where("r1", "gcp-eu-west", "gcp", "europe-west4", TAGS),
        step="ingest",
        artifact="ingest.transactions",
        to_site="aws-eu",
        size_bytes=DEMO_BYTES,
        usd_per_gb=per_gb,
        at=T0,
    )
    (row,) = read_rows(url)
    assert row.pricing_unit == "GiB"
    assert row.pricing_quantity == Decimal("0.031292894855")  # 33,600,490 / 2^30, to 12 places
    assert row.effective_cost_micro_usd == 3_755  # 0.12 USD/GiB × 0.0312930 GiB
    assert "gcp bills per GiB: 0.12 USD/GiB" in row.charge_description
    records = ledger.focus_records(db, run_id="r1")
    assert (records[0]["PricingUnit"], records[0]["PricingQuantity"]) == ("GiB", Decimal("0.031292894855"))


def test_a_copy_of_nothing_writes_nothing(db: Database, url: str) -> None:
    ledger.record_transfer(
        db,
        ledger.Where("r1", "x", "aws", "us-east-1", {}),
        step=None,
        artifact="a",
        to_site="y",
        size_bytes=0,
        usd_per_gb=Decimal("0.09"),
        at=T0,
    )
    assert read_rows(url) == []


def test_storage_is_prorated_in_gb_months_at_the_catalog_price_with_its_source(
    db: Database, url: str
) -> None:
    ledger.record_storage(
        db,
        ledger.Where("r1", "aws-us-east", "aws", "us-east-1", TAGS),
        artifact="train.model",
        size_bytes=10 * 10**9,
        start=T0,
        end=T0 + timedelta(hours=73),
    )
    (row,) = read_rows(url)
    # 10 GB for a tenth of a 730-hour month at S3 Standard's 0.023 $/GB-month.
    assert (row.pricing_quantity, row.pricing_unit) == (Decimal(1), "GB-months")
    assert row.effective_cost_micro_usd == 23_000
    assert (row.service_category, row.service_name, row.kind) == ("Storage", "Object Storage", "storage")
    assert row.sku_id == "object-storage:aws:us-east-1"
    assert "0.023 USD/GB-month (S3 Standard" in row.charge_description
    assert "https://aws.amazon.com/s3/pricing/" in row.charge_description
    assert row.step is None


def test_gcp_storage_is_recorded_in_gib_months_at_its_regional_rate(db: Database, url: str) -> None:
    ledger.record_storage(
        db,
        ledger.Where("r1", "gcp-frankfurt", "gcp", "europe-west3", TAGS),
        artifact="a",
        size_bytes=2 * GIB,
        start=T0,
        end=T0 + timedelta(hours=730),
    )
    (row,) = read_rows(url)
    assert (row.pricing_quantity, row.pricing_unit) == (Decimal(2), "GiB-months")
    assert row.effective_cost_micro_usd == 46_000  # europe-west3 Standard: 0.023 per GiB-month
    assert "https://cloud.google.com/storage/pricing" in row.charge_description


def test_storage_takes_an_explicit_rate_and_owned_disks_write_no_row(db: Database, url: str) -> None:
    month = T0 + timedelta(hours=730)
    negotiated = StorageRate("gcp", frozenset(), Decimal("0.026"), "GB", "negotiated", "contract 42")
    for site, provider, rate in (("s1", "gcp", negotiated), ("s2", "onprem", None)):
        ledger.record_storage(
            db,
            ledger.Where("r1", site, provider, "r", TAGS),
            artifact="a",
            size_bytes=2 * 10**9,
            start=T0,
            end=month,
            rate=rate,
        )
    (paid,) = read_rows(url)
    assert paid.effective_cost_micro_usd == 52_000
    assert "(negotiated; source: contract 42)" in paid.charge_description


def test_catalog_storage_rates_and_unknown_providers() -> None:
    table = Catalog.bundled().storage
    assert table.rate("aws", "us-east-1").usd_per_gb_month == Decimal("0.023")
    assert table.rate("gcp", "europe-west4").usd_per_unit_month == Decimal("0.020")
    assert table.rate("gcp", "europe-west4").unit == "GiB"
    assert table.rate("gcp", "europe-west3").usd_per_unit_month == Decimal("0.023")
    assert table.rate("azure", "eastus").usd_per_unit_month == Decimal("0.0184")
    assert table.rate("local", "laptop").usd_per_unit_month == 0
    assert all(rate.source for rate in table.rates)
    with pytest.raises(CatalogError, match=r"no storage price for ibm us-south; the table knows aws, azure"):
        table.rate("ibm", "us-south")


# --- money and bad calls ------------------------------------------------------------------------------------


def test_micro_dollars_round_half_to_even_and_format_without_exponents() -> None:
    assert ledger.to_micros(Decimal("0.0000005")) == 0
    assert ledger.to_micros(Decimal("0.0000015")) == 2
    assert ledger.to_micros(Decimal("1.2345674")) == 1_234_567
    assert ledger.from_micros(53_458) == Decimal("0.053458")
    assert ledger.format_usd(0) == "0.000000"
    assert ledger.format_usd(-157_650) == "-0.157650"


def test_naive_datetimes_are_refused_with_the_fix(db: Database, url: str) -> None:
    with pytest.raises(
        ValueError, match=r"has no time zone; pass an aware datetime such as datetime.now\(UTC\)"
    ):
        vm(db, started=datetime(2025, 3, 1, 9, 0))
    assert read_rows(url) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seconds": -1.0}, "seconds -1.0 is negative"),
        ({"ended": T0 - timedelta(seconds=1)}, "charge period ends .* before it starts"),
        ({"where": ledger.Where("", "gcp-eu-west", "gcp", "europe-west4", TAGS)}, "run_id is empty"),
        ({"price_per_hour_usd": Decimal("-1")}, "cost -0.25 is negative"),
    ],
)
def test_bad_compute_calls_say_what_is_wrong(
    db: Database, url: str, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        vm(db, **overrides)
    assert read_rows(url) == []


# --- Where and Charge ---------------------------------------------------------------------------------------


def test_one_where_gives_every_kind_of_row_at_a_site_its_run_place_and_tags(db: Database, url: str) -> None:
    where = ledger.Where("r9", "aws-eu", "aws", "eu-west-1", TAGS)
    vm(db, where, step="train")
    ledger.record_transfer(
        db,
        where,
        step="train",
        artifact="train.model",
        to_site="onprem-eu-gpu",
        size_bytes=10**9,
        usd_per_gb=Decimal("0.02"),
        at=T0,
    )
    ledger.record_storage(
        db, where, artifact="train.model", size_bytes=10**9, start=T0, end=T0 + timedelta(hours=730)
    )
    rows = read_rows(url)
    assert [(r.kind, r.step) for r in rows] == [
        ("compute", "train"),
        ("transfer", "train"),
        ("storage", None),
    ]
    for row in rows:
        assert (row.run_id, row.site, row.provider_name, row.region_id) == (
            "r9",
            "aws-eu",
            "aws",
            "eu-west-1",
        )
        assert (row.team, row.project, row.tags) == ("risk-ml", "fraud", dict(sorted(TAGS.items())))
    assert rows[0].resource_id == "aws-eu/r9/train"
    assert rows[1].resource_id == "aws-eu->onprem-eu-gpu/train.model"  # egress is billed at the sender


def test_a_charge_is_built_into_a_row_with_its_step_at_its_where() -> None:
    where = ledger.Where("r1", "a", "onprem", "dc", {"team": "t"})
    charge = ledger.Charge(
        step="train",
        kind="planned",
        pricing="spot",
        effective_usd=Decimal("1.5"),
        list_usd=Decimal(2),
        quantity=Decimal(3),
        unit="hours",
        service_category="Compute",
        service_name="Virtual Machines",
        sku="node",
        resource_id="a/r1/train",
        resource_name="train",
        description="plan",
        start=T0,
        end=T0 + timedelta(hours=3),
    )
    row = build_row(where, charge, now=T0)
    assert (row.run_id, row.site, row.step, row.team) == ("r1", "a", "train", "t")
    assert (row.effective_cost_micro_usd, row.list_cost_micro_usd) == (1_500_000, 2_000_000)
    assert (row.pricing_category, row.to_site) == ("Dynamic", None)
    with pytest.raises(FrozenInstanceError):
        where.site = "b"  # type: ignore[misc]
