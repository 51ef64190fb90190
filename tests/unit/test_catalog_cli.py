"""``stratus catalog`` as a user runs it, through Typer's runner on the sub-app."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stratus.cli.catalog_cmd import app
from stratus.errors import ConfigError

runner = CliRunner()

AWS_HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
    "AvailabilityZone,Arch"
)


@pytest.fixture(autouse=True)
def _empty_working_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default --platform is ./stratus.yaml: run where no imported catalog can change the figures."""
    monkeypatch.chdir(tmp_path)


def run_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def test_json_shape_and_cheapest_first() -> None:
    payload = run_json("--limit", "0")
    assert set(payload) == {"offerings", "notes"}
    first = payload["offerings"][0]
    assert set(first) == {
        "provider",
        "region",
        "name",
        "vcpus",
        "memory_gb",
        "accelerator",
        "price_per_hour_usd",
        "spot_price_per_hour_usd",
        "zones",
    }
    prices = [Decimal(o["price_per_hour_usd"]) for o in payload["offerings"]]
    assert prices == sorted(prices)
    assert len(prices) == 528
    assert payload["notes"] == []


def test_default_limit_says_how_many_matched() -> None:
    payload = run_json()
    assert len(payload["offerings"]) == 20
    assert payload["notes"] == ["showing the 20 cheapest of 528 offerings; --limit 0 shows all"]


def test_accelerator_filter_and_exact_count() -> None:
    payload = run_json("--accelerator", "H100", "--limit", "0")
    shapes = {(o["provider"], o["accelerator"]["count"]) for o in payload["offerings"]}
    assert shapes == {("aws", 8), ("azure", 1), ("gcp", 8)}
    only_one = run_json("--accelerator", "h100:1", "--limit", "0")
    assert {o["name"] for o in only_one["offerings"]} == {"Standard_NC40ads_H100_v5"}
    cheapest = payload["offerings"][0]
    assert (cheapest["provider"], cheapest["name"], cheapest["price_per_hour_usd"]) == (
        "azure",
        "Standard_NC40ads_H100_v5",
        "6.98",
    )
    assert cheapest["spot_price_per_hour_usd"] is None
    assert cheapest["accelerator"] == {"name": "H100", "count": 1}


def test_skipped_accelerators_are_explained() -> None:
    payload = run_json("--accelerator", "T4", "--provider", "gcp")
    assert payload["offerings"] == []
    assert payload["notes"] == [
        "gcp T4:1 is not listed: T4 attaches to n1-* host VMs, which Stratus does not pair "
        "(23 region(s), 51 catalog row(s))"
    ]


def test_spot_sorts_by_spot_price() -> None:
    payload = run_json("--spot", "--provider", "aws", "--region", "us-east-1", "--limit", "0")
    spots = [Decimal(o["spot_price_per_hour_usd"]) for o in payload["offerings"]]
    assert spots == sorted(spots)
    assert all(o["region"] == "us-east-1" for o in payload["offerings"])


def test_azure_note_when_asked_for_azure() -> None:
    payload = run_json("--provider", "azure", "--limit", "1")
    assert payload["notes"][0].startswith("azure: the bundled Azure catalog covers US regions only")
    result = runner.invoke(app, ["--provider", "azure", "--region", "westeurope"])
    assert isinstance(result.exception, ConfigError)
    assert "region 'westeurope' has no offerings in the catalog for azure" in str(result.exception)
    assert "covers US regions only" in str(result.exception)


def test_unknown_provider_and_accelerator() -> None:
    result = runner.invoke(app, ["--provider", "oracle"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception).startswith(
        "--provider: unknown provider 'oracle'; expected one of aws, azure, gcp"
    )
    result = runner.invoke(app, ["--accelerator", "X100"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception).startswith(
        "--accelerator: unknown accelerator 'X100'; the catalog knows A10, A100"
    )
    assert result.exception.exit_code == 2


def test_table_output_has_the_columns() -> None:
    result = runner.invoke(
        app, ["--provider", "gcp", "--accelerator", "L4", "--limit", "3"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[1]
    for column in (
        "provider",
        "region",
        "offering",
        "vCPUs",
        "memory",
        "accelerator",
        "on-demand $/h",
        "spot $/h",
    ):
        assert column in header
    assert "g2-standard-4" in result.stdout
    assert "L4:1" in result.stdout


def test_import_then_list_uses_the_imported_prices(tmp_path: Path) -> None:
    src = tmp_path / "v8" / "aws"
    src.mkdir(parents=True)
    (src / "vms.csv").write_text(f"{AWS_HEADER}\nm9.large,,,2.0,8.0,,0.0001,,us-east-1,use1-az1,x86_64\n")
    platform = tmp_path / "team" / "stratus.yaml"
    platform.parent.mkdir()
    result = runner.invoke(app, ["import", str(tmp_path / "v8"), "--platform", str(platform), "--json"])
    assert result.exit_code == 0, result.output
    dest = platform.parent / ".stratus" / "catalog"
    assert json.loads(result.stdout) == {"imported": {"aws": 1}, "destination": str(dest)}
    payload = run_json("--platform", str(platform), "--provider", "aws")
    assert [o["name"] for o in payload["offerings"]] == ["m9.large"]
    assert payload["notes"] == [f"aws prices come from {dest / 'aws' / 'vms.csv'}"]


def test_import_needs_the_platform_folder(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["import", str(tmp_path), "--platform", str(tmp_path / "nope" / "stratus.yaml")]
    )
    assert isinstance(result.exception, ConfigError)
    assert "the folder of the platform file" in str(result.exception)
    assert "does not exist" in str(result.exception)


def test_help_teaches_with_examples() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "Example: stratus catalog --accelerator A100 --provider gcp" in result.stdout
    assert "Example: --accelerator A100:8" in result.stdout
    result = runner.invoke(app, ["import", "--help"], env={"COLUMNS": "200"})
    assert "Example: stratus catalog import" in result.stdout
