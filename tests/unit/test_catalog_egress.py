"""Egress prices with concrete first-tier figures, the rule order, owned sites, and missing rates."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from stratus.catalog import Catalog, EgressTable, Location, region_info
from stratus.errors import CatalogError


def loc(provider: str, region: str) -> Location:
    info = region_info(provider, region)
    continent = info.continent if info else "europe"
    return Location(provider, region, continent)


@pytest.mark.parametrize(
    ("src", "dst", "usd"),
    [
        (("aws", "us-east-1"), ("aws", "us-west-2"), "0.02"),
        (("aws", "us-east-1"), ("aws", "us-east-2"), "0.01"),
        (("aws", "us-east-2"), ("aws", "us-east-1"), "0.01"),
        (("aws", "us-east-1"), ("aws", "eu-west-1"), "0.02"),
        (("aws", "ap-northeast-2"), ("aws", "us-east-1"), "0.08"),
        (("aws", "ap-northeast-1"), ("gcp", "us-central1"), "0.114"),
        (("aws", "ap-south-1"), ("azure", "eastus"), "0.1093"),
        (("aws", "us-east-1"), ("onprem", "basement"), "0.09"),
        (("aws", "me-central-1"), ("gcp", "me-central1"), "0.117"),
        (("gcp", "europe-west4"), ("gcp", "us-central1"), "0.08"),
        (("gcp", "europe-west4"), ("gcp", "europe-west1"), "0.02"),
        (("gcp", "us-central1"), ("gcp", "us-east1"), "0.01"),
        (("gcp", "asia-east1"), ("gcp", "asia-northeast1"), "0.05"),
        (("gcp", "us-central1"), ("gcp", "australia-southeast1"), "0.15"),
        (("gcp", "asia-southeast2"), ("gcp", "europe-west1"), "0.15"),
        (("gcp", "asia-southeast2"), ("gcp", "asia-east1"), "0.05"),
        (("gcp", "australia-southeast1"), ("gcp", "australia-southeast2"), "0.08"),
        (("gcp", "europe-west4"), ("aws", "eu-central-1"), "0.12"),
        (("gcp", "asia-northeast1"), ("aws", "us-east-1"), "0.14"),
        (("gcp", "asia-northeast3"), ("azure", "eastus"), "0.147"),
        (("gcp", "asia-northeast1"), ("aws", "ap-southeast-2"), "0.19"),
        (("gcp", "us-central1"), ("aws", "ap-southeast-2"), "0.19"),
        (("gcp", "asia-southeast1"), ("aws", "us-east-1"), "0.19"),
        (("azure", "eastus"), ("aws", "us-east-1"), "0.0875"),
        (("azure", "eastus"), ("azure", "westus2"), "0.02"),
        (("azure", "eastus"), ("azure", "westeurope"), "0.05"),
        (("azure", "japaneast"), ("azure", "westeurope"), "0.08"),
        (("azure", "brazilsouth"), ("gcp", "us-central1"), "0.181"),
        (("aws", "us-east-1"), ("aws", "us-east-1"), "0"),
    ],
)
def test_rates(src: tuple[str, str], dst: tuple[str, str], usd: str) -> None:
    """The figures as each provider lists them (per GiB for gcp, per GB for the others)."""
    rate, unit = Catalog.bundled().egress.listed_rate(loc(*src), loc(*dst))
    assert rate == Decimal(usd)
    assert unit == ("GiB" if src[0] == "gcp" else "GB")


def test_a_per_gib_price_is_converted_to_decimal_gb_for_planning() -> None:
    egress = Catalog.bundled().egress
    gcp, aws = loc("gcp", "europe-west4"), loc("aws", "eu-central-1")
    assert egress.rate_usd_per_gb(gcp, aws) == Decimal("0.12") * 10**9 / 2**30
    assert round(egress.rate_usd_per_gb(gcp, aws), 6) == Decimal("0.111759")
    assert egress.rate_usd_per_gb(aws, gcp) == Decimal("0.09")  # aws lists per GB: unchanged
    assert "0.12 USD/GiB (= 0.111759 USD/GB)" in egress.describe(gcp, aws)


def test_owned_sources_pay_nothing() -> None:
    egress = Catalog.bundled().egress
    onprem = Location("onprem", "basement", "europe")
    assert egress.rate_usd_per_gb(onprem, loc("aws", "us-east-1")) == Decimal(0)
    assert egress.rate_usd_per_gb(Location("local", "laptop", "europe"), onprem) == Decimal(0)
    assert "owned links pay no per-GB egress" in egress.describe(onprem, loc("gcp", "europe-west4"))


def test_describe_names_the_rule_and_its_source() -> None:
    text = Catalog.bundled().egress.describe(loc("aws", "us-east-1"), loc("aws", "us-east-2"))
    assert text.startswith("aws:us-east-1 -> aws:us-east-2: 0.01 USD/GB; inter-region rate: aws inter_region")
    assert "only between us-east-1 and us-east-2" in text
    assert "skyplane" in text


def test_missing_rate_says_which_provider_and_how_to_override() -> None:
    egress = Catalog.bundled().egress
    with pytest.raises(CatalogError) as info:
        egress.rate_usd_per_gb(loc("gcp", "me-central1"), loc("gcp", "me-west1"))
    message = str(info.value)
    assert "no inter_region egress rate for gcp from middle_east (me-central1)" in message
    assert "add an `egress:` entry to the platform file" in message
    with pytest.raises(
        CatalogError, match=r"no egress rates for provider 'oracle' \(the table knows aws, azure, gcp\)"
    ):
        egress.rate_usd_per_gb(Location("oracle", "x", "europe"), loc("aws", "us-east-1"))


def test_inter_zone_rates_are_kept() -> None:
    assert Catalog.bundled().egress.inter_zone_usd_per_gb("aws") == Decimal("0.01")
    assert Catalog.bundled().egress.inter_zone_usd_per_gb("azure") is None


HEADER = "provider,scope,from_continent,to_continent,source_regions,dest_regions,usd_per_gb,note,source\n"


def test_malformed_egress_rows_are_located() -> None:
    with pytest.raises(CatalogError) as info:
        EgressTable.read(io.StringIO(HEADER + "aws,internet,europe,any,,,free,n,s\n"), "egress.csv")
    assert str(info.value) == "egress.csv:2:7: usd_per_gb: 'free' is not a non-negative number of USD per GB"
    with pytest.raises(CatalogError, match=r"egress.csv:2:3: from_continent: unknown continent 'atlantis'"):
        EgressTable.read(io.StringIO(HEADER + "aws,internet,atlantis,any,,,0.1,n,s\n"), "egress.csv")
    duplicate = HEADER + "aws,internet,europe,any,,,0.1,n,s\naws,internet,europe,any,,,0.2,n,s\n"
    with pytest.raises(CatalogError, match=r"egress.csv:3: duplicates the rule on line 2"):
        EgressTable.read(io.StringIO(duplicate), "egress.csv")
