"""GCP host + accelerator pairing, the accelerator median, TPUs and the skip report."""

from __future__ import annotations

import io
from decimal import Decimal

from stratus.catalog import Catalog, Offering
from stratus.catalog.catalog import parse_provider_catalog
from stratus.resources import Accelerator

GCP_HEADER = (
    "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,"
    "Price,SpotPrice"
)


def gcp(region: str, name: str, accelerator: Accelerator | None = None) -> Offering:
    matches = [
        o
        for o in Catalog.bundled().offerings("gcp", region)
        if o.name == name and (accelerator is None or o.accelerator == accelerator)
    ]
    assert len(matches) == 1, matches
    return matches[0]


def test_l4_pairs_with_g2_standard_4() -> None:
    offering = gcp("us-central1", "g2-standard-4")
    assert offering.accelerator == Accelerator("L4", 1)
    assert offering.price_per_hour_usd == Decimal("0.70683")  # 0.14679 host + 0.56004 L4
    assert offering.spot_price_per_hour_usd == Decimal("0.28184")  # 0.05874 + 0.2231
    assert (offering.vcpus, offering.memory_gb) == (4.0, 16.0)


def test_a100_and_h100_pairs() -> None:
    a100 = gcp("us-central1", "a2-highgpu-1g")
    assert a100.accelerator == Accelerator("A100", 1)
    assert a100.price_per_hour_usd == Decimal("3.67339")  # 0.73948 + 2.93391
    assert a100.zones == ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f")
    h100 = gcp("us-central1", "a3-highgpu-8g")
    assert h100.accelerator == Accelerator("H100", 8)
    assert h100.price_per_hour_usd == Decimal("43.06615")  # 9.46006 + 33.60609
    assert h100.spot_price_per_hour_usd == Decimal("26.83013")  # 2.88933 + 23.9408


def test_pairs_only_in_zones_with_both_rows() -> None:
    # europe-west3 sells H100:8 in zones a and c, but a3-highgpu-8g only in c.
    assert gcp("europe-west3", "a3-highgpu-8g").zones == ("europe-west3-c",)


def test_gpu_hosts_are_never_sold_alone() -> None:
    names = {o.name for o in Catalog.bundled().all() if o.provider == "gcp" and o.accelerator is None}
    assert names == {"e2-standard-8", "n2-standard-4", "n2-standard-16"}


def test_tpu_rows_become_offerings_named_after_the_tpu() -> None:
    tpu = gcp("us-west4", "tpu-v5litepod-1")
    assert tpu.accelerator == Accelerator("tpu-v5litepod-1", 1)
    assert (tpu.price_per_hour_usd, tpu.spot_price_per_hour_usd) == (Decimal("1.2"), Decimal("0.48"))
    assert (tpu.vcpus, tpu.memory_gb) == (0.0, 0.0)
    assert gcp("us-east5", "tpu-v6e-8").price_per_hour_usd == Decimal("21.6")


def test_skipped_rows_say_why() -> None:
    skipped = {r.item: r for r in Catalog.bundled().skipped_rows("gcp")}
    assert skipped["T4:1"].reason == "T4 attaches to n1-* host VMs, which Stratus does not pair"
    assert skipped["T4:1"].rows == 51
    assert skipped["A100:8"].reason == "its host VM a2-highgpu-8g is not in the catalog"
    assert skipped["H200:8"].reason == "its host VM a3-ultragpu-8g is not in the catalog"
    assert skipped["H100:8"].regions == ("asia-northeast3", "europe-west2", "northamerica-northeast2")
    assert skipped["a3-highgpu-1g"].accelerator == Accelerator("H100", 1)
    assert Catalog.bundled().skipped_rows("aws") == ()


def test_accelerator_price_is_the_median_of_the_zones() -> None:
    text = (
        f"{GCP_HEADER}\n"
        "a3-highgpu-8g,208,1872,,,,us-x1,us-x1-a,10,2\n"
        "a3-highgpu-8g,208,1872,,,,us-x1,us-x1-b,10,2\n"
        "a3-highgpu-8g,208,1872,,,,us-x1,us-x1-c,10,2\n"
        ",,,H100,8,,us-x1,us-x1-a,33.6,20\n"
        ",,,H100,8,,us-x1,us-x1-b,90,25\n"
        ",,,H100,8,,us-x1,us-x1-c,100,\n"
    )
    table = parse_provider_catalog("gcp", io.StringIO(text), "gcp.csv")
    (offering,) = table.by_region["us-x1"]
    assert offering.price_per_hour_usd == Decimal("100")  # host 10 + median(33.6, 90, 100) = 90
    assert offering.spot_price_per_hour_usd == Decimal("24.5")  # host 2 + median(20, 25) = 22.5
