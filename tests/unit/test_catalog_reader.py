"""The v8 reader and per-region aggregation: bundled figures, oddities, and malformed files."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from stratus.catalog import Catalog, Offering
from stratus.catalog.catalog import parse_provider_catalog
from stratus.errors import CatalogError
from stratus.resources import Accelerator

AWS_HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
    "AvailabilityZone,Arch"
)
AZURE_HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,Generation"
)


def parse(provider: str, text: str, label: str = "vms.csv") -> dict[tuple[str, str], Offering]:
    table = parse_provider_catalog(provider, io.StringIO(text), label)
    return {(o.name, o.region): o for offs in table.by_region.values() for o in offs}


def find(provider: str, region: str, name: str) -> Offering:
    matches = [o for o in Catalog.bundled().offerings(provider, region) if o.name == name]
    assert len(matches) == 1, f"{provider} {region} {name}: {matches}"
    return matches[0]


def test_bundled_catalog_has_every_provider_and_region() -> None:
    catalog = Catalog.bundled()
    assert catalog.providers == ("aws", "azure", "gcp")
    assert len(catalog.regions("aws")) == 23
    assert len(catalog.regions("gcp")) == 42
    assert catalog.regions("azure") == (
        "centralus",
        "eastus",
        "eastus2",
        "northcentralus",
        "southcentralus",
        "westcentralus",
        "westus",
        "westus2",
        "westus3",
    )
    assert Catalog.bundled() is catalog, "the bundled catalog is parsed once per process"


def test_offerings_are_hashable_and_cheapest_first() -> None:
    offerings = Catalog.bundled().offerings("aws", "us-east-1")
    prices = [o.price_per_hour_usd for o in offerings]
    assert prices == sorted(prices)
    assert len(set(offerings)) == len(offerings)
    assert Catalog.bundled().offerings("aws", "mars-north-1") == ()
    assert Catalog.bundled().regions("ibm") == ()


def test_aws_min_over_zones_and_spot_ignores_empty_cells() -> None:
    p3 = find("aws", "us-east-1", "p3.2xlarge")
    assert p3.price_per_hour_usd == Decimal("3.06")
    # Zones az1/az2/az5/az6 have spot prices; the cheapest is use1-az1 at 0.3707.
    assert p3.spot_price_per_hour_usd == Decimal("0.3707")
    assert p3.accelerator == Accelerator("V100", 1)
    assert (p3.vcpus, p3.memory_gb) == (8.0, 61.0)
    assert "use1-az1" in p3.zones
    assert "use1-az3" in p3.zones
    assert p3.source == "catalog"
    assert p3.reserved is None


def test_spot_not_below_on_demand_is_no_spot_offer() -> None:
    azure_h100 = find("azure", "eastus", "Standard_NC40ads_H100_v5")
    assert azure_h100.price_per_hour_usd == Decimal("6.98")
    assert azure_h100.spot_price_per_hour_usd is None
    assert azure_h100.zones == ()
    aws_p5 = find("aws", "ap-northeast-1", "p5.48xlarge")
    # apne1-az1 repeats the 68.8 on-demand price as spot (ignored); apne1-az4 has a real spot price.
    assert aws_p5.spot_price_per_hour_usd == Decimal("23.1449")


def test_columns_are_read_by_name_and_extra_columns_ignored() -> None:
    text = (
        "Region,Price,SpotPrice,InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,Extra\n"
        "us-east-1,0.5,0.1,m9.large,2,8,,,whatever\n"
        "us-east-1,0.4,,m9.large,2,8,,,whatever\n"
    )
    offering = parse("aws", text)[("m9.large", "us-east-1")]
    assert offering.price_per_hour_usd == Decimal("0.4")
    assert offering.spot_price_per_hour_usd == Decimal("0.1")
    assert offering.zones == ()


def test_missing_column_names_file_and_column() -> None:
    header = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,SpotPrice,Region"
    text = f"{header}\nm9,,,2,8,,us-east-1\n"
    with pytest.raises(CatalogError) as info:
        parse("aws", text, label="cat/aws/vms.csv")
    assert str(info.value).startswith("cat/aws/vms.csv:1: Price: missing required column 'Price'")
    assert info.value.field == "Price"


def test_bad_number_names_file_line_and_column() -> None:
    text = (
        f"{AWS_HEADER}\n"
        "m9.large,,,2,8,,0.5,,us-east-1,use1-az1,x86_64\n"
        "m9.large,,,2,8,,cheap,,us-east-1,use1-az2,x86_64\n"
    )
    with pytest.raises(CatalogError) as info:
        parse("aws", text, label="aws_vms.csv")
    assert (info.value.file, info.value.line, info.value.column, info.value.field) == (
        "aws_vms.csv",
        3,
        7,
        "Price",
    )
    assert str(info.value) == (
        "aws_vms.csv:3:7: Price: 'cheap' is not a non-negative number; expected a decimal such as 0.096"
    )


def test_negative_price_and_short_row_are_errors() -> None:
    with pytest.raises(CatalogError, match=r"vms.csv:2:8: SpotPrice: '-1' is not a non-negative number"):
        parse("aws", f"{AWS_HEADER}\nm9,,,2,8,,0.5,-1,us-east-1,a,x86_64\n")
    with pytest.raises(CatalogError, match=r"vms.csv:2:9: Region: row has 6 fields but the header has 11"):
        parse("aws", f"{AWS_HEADER}\nm9,,,2,8,\n")


def test_empty_file_is_an_error() -> None:
    with pytest.raises(CatalogError, match=r"^x.csv:1: the file is empty; expected a SkyPilot v8 vms.csv"):
        parse("azure", "", label="x.csv")


def test_unpriceable_rows_are_skipped_and_reported() -> None:
    text = (
        f"{AZURE_HEADER}\n"
        "Standard_A,,,2,8,,0.2,0.05,eastus,V2\n"
        "Standard_NV6ads_A10_v5,A10,0.1667,6,55,,0.45,0.1,eastus,V2\n"
        "Standard_Zero,,,2,8,,0.0,,eastus,V2\n"
        "Standard_Gone,,,2,8,,,,westus,V2\n"
    )
    table = parse_provider_catalog("azure", io.StringIO(text), "vms.csv")
    assert [o.name for o in table.by_region["eastus"]] == ["Standard_A"]
    reasons = {r.item: r.reason for r in table.skipped}
    assert reasons["Standard_NV6ads_A10_v5"].startswith("fractional accelerator count 0.1667")
    assert reasons["Standard_Zero"] == "Price 0 is a catalog placeholder, not a free machine"
    assert reasons["Standard_Gone"] == "no on-demand Price in the catalog (not sold there)"
    assert table.rows == 4
