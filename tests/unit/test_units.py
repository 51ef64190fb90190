"""The one unit convention: decimal GB, GiB only where a provider bills so, one money format."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

from stratus.cli.serve_cmd import _serving_machines
from stratus.serving.deployment import SiteProcess
from stratus.units import (
    bytes_from_gb,
    format_gb,
    format_usd,
    gb_from_bytes,
    per_gb_rate,
    quantity_in,
    usd_fixed,
)
from stratus.workspace import Workspace


def test_bytes_and_gigabytes() -> None:
    assert gb_from_bytes(33_600_490) == Decimal("0.03360049")
    assert quantity_in(2**30, "GiB") == 1
    assert quantity_in(2**30, "GB") == Decimal("1.073741824")
    assert bytes_from_gb(1.5) == 1_500_000_000
    assert per_gb_rate(Decimal("0.12"), "GiB") == Decimal("0.12") * 10**9 / 2**30
    assert per_gb_rate(Decimal("0.09"), "GB") == Decimal("0.09")
    assert format_gb(33_600_490) == "0.03360049 GB"
    assert format_gb(203) == "0.000000203 GB"
    assert format_gb(12_500_000_000) == "12.5 GB"


def test_money_is_printed_one_way() -> None:
    assert format_usd(Decimal("0.0030240441")) == "$0.003024"
    assert format_usd(Decimal("1234.5")) == "$1,234.500000"
    assert format_usd(Decimal("-0.00012")) == "-$0.000120"
    assert format_usd(0.192) == "$0.192000"
    assert usd_fixed(Decimal("1234.5678905")) == "1234.567890"  # half to even, like the ledger


def test_a_serving_price_names_the_machine_it_is_the_price_of() -> None:
    site = SiteProcess("aws-us-east", 1, 2, "log", [], "m.onnx", 0.192, offering="m6i.xlarge", vcpus=4)
    assert site.machine == "m6i.xlarge (4 vCPU)"
    old = SiteProcess("aws-us-east", 1, 2, "log", [], "m.onnx", 0.192)  # a record written before
    assert old.machine == "-"


REPO = Path(__file__).resolve().parents[2]


def test_serving_prices_the_cheapest_fitting_machine_and_keeps_its_real_vcpus(tmp_path: Path) -> None:
    # A copy of the example's platform file, so its folder has no imported catalog: the bundled one prices.
    platform_file = tmp_path / "stratus.yaml"
    shutil.copyfile(REPO / "examples" / "fraud-detection" / "stratus.yaml", platform_file)
    machines = _serving_machines(Workspace(platform_file), ["aws-us-east", "gcp-eu-west"])
    for site, offering in machines.items():
        assert offering.vcpus >= 2, site
        assert offering.memory_gb >= 4, site
    # The catalog sells no 2-vCPU machine there: the old "$/h (2 vCPU)" column priced a 4-vCPU one.
    assert {o.vcpus for o in machines.values()} == {4}
