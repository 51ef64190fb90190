"""GCP GPU offerings: a host VM row plus an accelerator row, paired as SkyPilot pairs them.

GCP's v8 catalog prices GPUs as separate rows with an empty InstanceType, billed on top of a host VM.
A GPU offering is therefore the host (e.g. ``a2-highgpu-1g``) with the accelerator (``A100:1``) at
host price + accelerator price, in the zones that have both rows. Spot is offered only when both
halves have a spot price. The GPU hosts are never offered on their own: they cannot run without GPUs.

The accelerator price per region is the MEDIAN over the region's zones, not the minimum: upstream,
H100:8 rows differ widely (33.61 vs 78-102 USD/h for the same device), and a median resists one
outlying zone where a minimum would adopt it. Where zones agree (all of the bundled data) the two match.

Accelerators without a host in the catalog are skipped and reported: T4 (and V100, P100, P4, K80)
attach to n1-* hosts, whose CPU count SkyPilot chooses per request, so Stratus does not pair them.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from stratus.catalog.assemble import (
    SkipLog,
    accelerator_of,
    build_offerings,
    cheapest,
    priced_rows,
    usable_spot,
)
from stratus.catalog.offerings import Offering
from stratus.catalog.reader import VmRow
from stratus.resources import Accelerator

__all__ = ["GCP_GPU_HOSTS", "build_gcp_offerings"]

# (accelerator, count) -> host VM type. SkyPilot's default host per accelerator shape.
GCP_GPU_HOSTS: dict[tuple[str, int], str] = {
    ("L4", 1): "g2-standard-4",
    ("L4", 2): "g2-standard-24",
    ("L4", 4): "g2-standard-48",
    ("L4", 8): "g2-standard-96",
    ("A100", 1): "a2-highgpu-1g",
    ("A100", 2): "a2-highgpu-2g",
    ("A100", 4): "a2-highgpu-4g",
    ("A100", 8): "a2-highgpu-8g",
    ("A100", 16): "a2-megagpu-16g",
    ("A100-80GB", 1): "a2-ultragpu-1g",
    ("A100-80GB", 2): "a2-ultragpu-2g",
    ("A100-80GB", 4): "a2-ultragpu-4g",
    ("A100-80GB", 8): "a2-ultragpu-8g",
    ("H100", 1): "a3-highgpu-1g",
    ("H100", 2): "a3-highgpu-2g",
    ("H100", 4): "a3-highgpu-4g",
    ("H100", 8): "a3-highgpu-8g",
    ("H100-MEGA", 8): "a3-megagpu-8g",
    ("H200", 8): "a3-ultragpu-8g",
    ("B200", 8): "a4-highgpu-8g",
}
_N1_ACCELERATORS = frozenset({"T4", "V100", "P100", "P4", "K80"})
_HOST_TYPES = frozenset(GCP_GPU_HOSTS.values())
_ACCELERATOR_OF_HOST = {host: shape for shape, host in GCP_GPU_HOSTS.items()}


def _median(values: Iterable[Decimal | None]) -> Decimal | None:
    present = [value for value in values if value is not None]
    return Decimal(statistics.median(present)) if present else None


def _pair(
    accelerator: Accelerator, host_rows: list[VmRow], acc_rows: list[VmRow], skips: SkipLog
) -> Offering | None:
    """One region's paired offering, from the zones holding both a host row and an accelerator row."""
    item = f"{accelerator}"
    host_name = host_rows[0].instance_type
    hosts = {row.zone: row for row in priced_rows(host_rows, host_name, skips)}
    accs = {row.zone: row for row in priced_rows(acc_rows, item, skips)}
    zones = sorted(hosts.keys() & accs.keys())
    if not zones:
        skips.add(item, f"host {host_name} and the accelerator rows share no zone", acc_rows, accelerator)
        return None
    host_price = cheapest(hosts[zone].price for zone in zones)
    acc_price = _median(accs[zone].price for zone in zones)
    # priced_rows kept priced rows only, so both halves have a price.
    assert host_price is not None
    assert acc_price is not None
    host_spot = cheapest(usable_spot(hosts[zone]) for zone in zones)
    acc_spot = _median(usable_spot(accs[zone]) for zone in zones)
    spot = host_spot + acc_spot if host_spot is not None and acc_spot is not None else None
    host = hosts[zones[0]]
    return Offering(
        name=host_name,
        provider="gcp",
        region=host.region,
        vcpus=host.vcpus,
        memory_gb=host.memory_gb,
        accelerator=accelerator,
        price_per_hour_usd=host_price + acc_price,
        spot_price_per_hour_usd=spot,
        zones=tuple(zones),
    )


def _skip_reason(accelerator: Accelerator, host: str | None, host_seen: bool) -> str:
    if accelerator.name in _N1_ACCELERATORS:
        return f"{accelerator.name} attaches to n1-* host VMs, which Stratus does not pair"
    if host is None:
        return f"no host VM type is known for {accelerator}"
    if not host_seen:
        return f"its host VM {host} is not in the catalog"
    return f"its host VM {host} has no rows in these regions"


def build_gcp_offerings(rows: Iterable[VmRow], skips: SkipLog) -> list[Offering]:
    """All GCP offerings: plain VMs, TPUs (named by their accelerator), and host + GPU pairs."""
    plain: list[VmRow] = []
    tpus: dict[str, list[VmRow]] = defaultdict(list)
    hosts: dict[tuple[str, str], list[VmRow]] = defaultdict(list)
    gpus: dict[tuple[Accelerator, str], list[VmRow]] = defaultdict(list)
    for row in rows:
        if row.instance_type in _HOST_TYPES:
            hosts[(row.instance_type, row.region)].append(row)
        elif row.instance_type:
            plain.append(row)
        elif row.accelerator_name.startswith("tpu-"):
            tpus[row.accelerator_name].append(row)
        else:
            accelerator = accelerator_of(row)
            if isinstance(accelerator, Accelerator):
                gpus[(accelerator, row.region)].append(row)
            else:
                skips.add(row.accelerator_name, accelerator or "accelerator row without a count", [row])

    offerings = build_offerings("gcp", plain, skips)
    for name, tpu_rows in sorted(tpus.items()):
        offerings.extend(build_offerings("gcp", tpu_rows, skips, name=name))

    host_types_seen = {host for host, _ in hosts}
    paired_hosts: set[tuple[str, str]] = set()
    for (accelerator, region), acc_rows in gpus.items():
        host = GCP_GPU_HOSTS.get((accelerator.name, accelerator.count))
        host_rows = hosts.get((host, region)) if host else None
        if host is None or not host_rows or accelerator.name in _N1_ACCELERATORS:
            reason = _skip_reason(accelerator, host, host in host_types_seen)
            skips.add(str(accelerator), reason, acc_rows, accelerator)
            continue
        paired_hosts.add((host, region))
        offering = _pair(accelerator, host_rows, acc_rows, skips)
        if offering is not None:
            offerings.append(offering)

    for (host, region), host_rows in sorted(hosts.items()):
        if (host, region) not in paired_hosts:
            name, count = _ACCELERATOR_OF_HOST[host]
            reason = f"GPU host without {name}:{count} accelerator rows in this region (not sold alone)"
            skips.add(host, reason, host_rows, Accelerator(name, count))
    return offerings
