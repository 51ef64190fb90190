"""Turn parsed catalog rows into one Offering per (instance type, region).

The catalog lists a price per zone; the planner places work per region, so an offering carries the
cheapest zone's on-demand price and the cheapest zone's spot price (AWS prices spot per zone) and lists
the zones. Rows that cannot be priced are not dropped silently: they become SkippedRow records.

Oddities handled on purpose (also in data/SOURCES.md):
- empty SpotPrice means no spot offer;
- a SpotPrice not below Price means no spot offer (Azure's H100 rows repeat the on-demand price there,
  which is not a discount anyone can buy);
- an empty Price means the type is not sold there, and a Price of 0 is a placeholder (GCP a4 rows), so
  both are skipped rather than priced as free;
- a fractional AcceleratorCount (Azure shared-GPU sizes in full catalogs) is skipped, because Stratus
  allocates whole devices.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal

from stratus.catalog.offerings import Offering, SkippedRow
from stratus.catalog.reader import VmRow
from stratus.resources import Accelerator

__all__ = ["SkipLog", "accelerator_of", "build_offerings", "cheapest", "priced_rows", "usable_spot"]


class SkipLog:
    """Collects skipped rows grouped by (item, reason) so the CLI prints one line per cause."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._groups: dict[tuple[str, str], tuple[Accelerator | None, set[str], list[int]]] = {}

    def add(
        self, item: str, reason: str, rows: Iterable[VmRow], accelerator: Accelerator | None = None
    ) -> None:
        """Record ``rows`` as not offered, for ``reason``."""
        group = self._groups.setdefault((item, reason), (accelerator, set(), []))
        for row in rows:
            group[1].add(row.region)
            group[2].append(row.line)

    def records(self) -> tuple[SkippedRow, ...]:
        """The groups, sorted by item then reason."""
        return tuple(
            SkippedRow(self.provider, item, acc, reason, tuple(sorted(regions)), len(lines))
            for (item, reason), (acc, regions, lines) in sorted(self._groups.items())
        )


def usable_spot(row: VmRow) -> Decimal | None:
    """The row's spot price, or None when empty or not below on-demand (no real spot offer)."""
    if row.spot_price is None or row.price is None or row.spot_price >= row.price:
        return None
    return row.spot_price


def cheapest(values: Iterable[Decimal | None]) -> Decimal | None:
    """Minimum of the non-None values, None when there are none."""
    present = [value for value in values if value is not None]
    return min(present) if present else None


def accelerator_of(row: VmRow) -> Accelerator | str | None:
    """The row's accelerator, None for a CPU-only row, or a reason string when it cannot be modelled."""
    if not row.accelerator_name:
        return None
    count = row.accelerator_count if row.accelerator_count is not None else Decimal(1)
    if count == 0:
        return None
    if count != count.to_integral_value():
        return f"fractional accelerator count {count} (a shared-GPU size); Stratus allocates whole devices"
    return Accelerator(row.accelerator_name, int(count))


def priced_rows(rows: Sequence[VmRow], item: str, skips: SkipLog) -> list[VmRow]:
    """The rows with a usable on-demand price; the others go to ``skips``."""
    kept = [row for row in rows if row.price is not None and row.price > 0]
    empty = [row for row in rows if row.price is None]
    zero = [row for row in rows if row.price is not None and row.price == 0]
    if empty:
        skips.add(item, "no on-demand Price in the catalog (not sold there)", empty)
    if zero:
        skips.add(item, "Price 0 is a catalog placeholder, not a free machine", zero)
    return kept


def build_offerings(
    provider: str, rows: Iterable[VmRow], skips: SkipLog, name: str | None = None
) -> list[Offering]:
    """One offering per (instance type, region) from rows that each describe one zone.

    ``name`` overrides the offering name (GCP TPU rows have no InstanceType; their accelerator names them).
    """
    groups: dict[tuple[str, str], list[VmRow]] = defaultdict(list)
    for row in rows:
        groups[(name or row.instance_type, row.region)].append(row)
    offerings: list[Offering] = []
    for (item, region), group in groups.items():
        accelerator = accelerator_of(group[0])
        if isinstance(accelerator, str):
            skips.add(item, accelerator, group)
            continue
        kept = priced_rows(group, item, skips)
        if not kept:
            continue
        price = cheapest(row.price for row in kept)
        assert price is not None  # kept rows all have a price
        offerings.append(
            Offering(
                name=item,
                provider=provider,
                region=region,
                vcpus=kept[0].vcpus,
                memory_gb=kept[0].memory_gb,
                accelerator=accelerator,
                price_per_hour_usd=price,
                spot_price_per_hour_usd=cheapest(usable_spot(row) for row in kept),
                zones=tuple(sorted({row.zone for row in kept if row.zone})),
            )
        )
    return offerings
