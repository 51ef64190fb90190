"""Every bundled region resolves to a continent and jurisdiction; spot checks of the legal mapping."""

from __future__ import annotations

import csv
from importlib import resources

import pytest

from stratus.catalog import CONTINENTS, RegionInfo, continent_of_jurisdiction, known_regions, region_info


def bundled_regions(provider: str) -> set[str]:
    data = resources.files("stratus.catalog").joinpath("data", f"{provider}_vms.csv")
    with data.open("r", encoding="utf-8") as stream:
        return {row["Region"] for row in csv.DictReader(stream)}


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_every_bundled_region_has_an_entry(provider: str) -> None:
    regions = bundled_regions(provider)
    assert regions, "the bundled file has rows"
    missing = sorted(region for region in regions if region_info(provider, region) is None)
    assert missing == []
    for region in regions:
        info = region_info(provider, region)
        assert info is not None
        assert info.continent in CONTINENTS
        assert continent_of_jurisdiction(info.jurisdiction) == info.continent


@pytest.mark.parametrize(
    ("provider", "region", "jurisdiction", "continent", "country"),
    [
        ("gcp", "europe-west4", "EU", "europe", "NL"),
        ("aws", "eu-central-1", "EU", "europe", "DE"),
        ("aws", "eu-west-2", "UK", "europe", "GB"),
        ("gcp", "europe-west2", "UK", "europe", "GB"),
        ("gcp", "europe-west6", "CH", "europe", "CH"),
        ("aws", "us-east-1", "US", "north_america", "US"),
        ("aws", "ca-central-1", "CA", "north_america", "CA"),
        ("gcp", "northamerica-northeast2", "CA", "north_america", "CA"),
        ("aws", "ap-northeast-1", "JP", "asia", "JP"),
        ("aws", "ap-south-1", "IN", "asia", "IN"),
        ("aws", "ap-southeast-2", "AU", "oceania", "AU"),
        ("aws", "me-central-1", "AE", "middle_east", "AE"),
        ("aws", "il-central-1", "IL", "middle_east", "IL"),
        ("gcp", "me-west1", "IL", "middle_east", "IL"),
        ("gcp", "africa-south1", "ZA", "africa", "ZA"),
        ("gcp", "southamerica-west1", "CL", "south_america", "CL"),
        ("azure", "westeurope", "EU", "europe", "NL"),
        ("azure", "eastus", "US", "north_america", "US"),
    ],
)
def test_region_mapping(provider: str, region: str, jurisdiction: str, continent: str, country: str) -> None:
    assert region_info(provider, region) == RegionInfo(provider, region, continent, jurisdiction, country)


def test_unknown_regions_and_codes() -> None:
    assert region_info("aws", "mars-north-1") is None
    assert region_info("onprem", "basement") is None
    assert continent_of_jurisdiction("EU") == "europe"
    assert continent_of_jurisdiction("uk") == "europe"
    assert continent_of_jurisdiction("US") == "north_america"
    assert continent_of_jurisdiction("JP") == "asia"
    assert continent_of_jurisdiction("DE") == "europe", "a member state's ISO code also resolves"
    assert continent_of_jurisdiction("XX") is None
    assert "us-east-1" in known_regions("aws")
    assert known_regions("ibm") == ()
