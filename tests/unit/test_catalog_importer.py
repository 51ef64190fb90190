"""Importing a SkyPilot v8 catalog directory: validation first, atomic copy, user catalog replaces bundled."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from stratus.catalog import Catalog, import_catalog
from stratus.errors import CatalogError

AWS_HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
    "AvailabilityZone,Arch"
)
AWS_ROWS = (
    "m9.large,,,2.0,8.0,,0.1,0.03,us-east-1,use1-az1,x86_64\n"
    "m9.large,,,2.0,8.0,,0.1,,us-east-1,use1-az2,x86_64\n"
)
GCP_HEADER = (
    "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,"
    "Price,SpotPrice"
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_import_skypilot_layout_and_load_it(tmp_path: Path) -> None:
    src = tmp_path / "v8"
    write(src / "aws" / "vms.csv", f"{AWS_HEADER}\n{AWS_ROWS}")
    write(src / "lambda" / "vms.csv", "ignored,other,clouds\n")
    dest = tmp_path / "proj" / ".stratus" / "catalog"
    assert import_catalog(src, dest) == {"aws": 2}
    assert (dest / "aws" / "vms.csv").read_text(encoding="utf-8") == f"{AWS_HEADER}\n{AWS_ROWS}"
    assert sorted(p.name for p in (dest / "aws").iterdir()) == ["vms.csv"], "no temporary file is left"

    catalog = Catalog.load(dest)
    assert catalog.regions("aws") == ("us-east-1",)
    (offering,) = catalog.offerings("aws", "us-east-1")
    assert (offering.name, offering.price_per_hour_usd) == ("m9.large", Decimal("0.1"))
    assert catalog.regions("gcp") == Catalog.bundled().regions("gcp"), "other providers stay bundled"
    assert catalog.provider_catalog("aws").label == str(dest / "aws" / "vms.csv")  # type: ignore[union-attr]


def test_import_flat_layout(tmp_path: Path) -> None:
    write(tmp_path / "src" / "aws_vms.csv", f"{AWS_HEADER}\n{AWS_ROWS}")
    write(
        tmp_path / "src" / "gcp_vms.csv",
        f"{GCP_HEADER}\nn2-standard-4,4,16,,,,us-central1,us-central1-a,0.19,0.05\n",
    )
    assert import_catalog(tmp_path / "src", tmp_path / "dest") == {"aws": 2, "gcp": 1}
    assert (tmp_path / "dest" / "gcp" / "vms.csv").is_file()


def test_invalid_file_copies_nothing(tmp_path: Path) -> None:
    src = tmp_path / "v8"
    write(src / "aws" / "vms.csv", f"{AWS_HEADER}\n{AWS_ROWS}")
    bad = write(
        src / "gcp" / "vms.csv", f"{GCP_HEADER}\nn2-standard-4,4,16,,,,us-central1,us-central1-a,0.19,lots\n"
    )
    dest = tmp_path / "dest"
    with pytest.raises(CatalogError) as info:
        import_catalog(src, dest)
    assert str(info.value).startswith(f"{bad}:2:10: SpotPrice: 'lots' is not a non-negative number")
    assert not dest.exists()


def test_invalid_import_keeps_the_previous_catalog(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    write(tmp_path / "good" / "aws_vms.csv", f"{AWS_HEADER}\n{AWS_ROWS}")
    import_catalog(tmp_path / "good", dest)
    write(tmp_path / "bad" / "aws_vms.csv", "InstanceType,Price\nm9,0.1\n")
    with pytest.raises(CatalogError, match="missing required column 'AcceleratorName'"):
        import_catalog(tmp_path / "bad", dest)
    assert (dest / "aws" / "vms.csv").read_text(encoding="utf-8") == f"{AWS_HEADER}\n{AWS_ROWS}"


def test_empty_or_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"no catalog files found; expected aws/vms\.csv"):
        import_catalog(tmp_path, tmp_path / "dest")
    with pytest.raises(CatalogError, match="not a directory; pass a SkyPilot v8 catalog folder"):
        import_catalog(tmp_path / "nope", tmp_path / "dest")


def test_both_layouts_at_once_is_ambiguous(tmp_path: Path) -> None:
    write(tmp_path / "aws_vms.csv", f"{AWS_HEADER}\n{AWS_ROWS}")
    write(tmp_path / "aws" / "vms.csv", f"{AWS_HEADER}\n{AWS_ROWS}")
    with pytest.raises(CatalogError, match=r"both aws/vms\.csv and aws_vms\.csv exist"):
        import_catalog(tmp_path, tmp_path / "dest")


def test_load_without_user_dir_is_the_bundled_catalog(tmp_path: Path) -> None:
    assert Catalog.load(None) is Catalog.bundled()
    assert Catalog.load(tmp_path / "missing") is Catalog.bundled()
