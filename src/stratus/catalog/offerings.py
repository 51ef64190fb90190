"""The values the planner prices: one machine shape in one region, and the catalog rows left out.

They are frozen and hashable so a plan that holds them can be diffed, cached and serialised.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from stratus.resources import Accelerator

__all__ = ["Offering", "ReservedPrice", "SkippedRow"]


@dataclass(frozen=True)
class ReservedPrice:
    """Committed capacity: ``count`` machines already paid for at a lower hourly rate."""

    count: int
    price_per_hour_usd: Decimal


@dataclass(frozen=True)
class Offering:
    """One machine shape a provider sells in one region, at its cheapest zone's prices.

    ``spot_price_per_hour_usd`` is None when the catalog has no spot offer (empty, or not below the
    on-demand price). ``zones`` lists the zones that sell it, empty when the catalog has no zones (Azure).
    """

    name: str
    provider: str
    region: str
    vcpus: float
    memory_gb: float
    accelerator: Accelerator | None
    price_per_hour_usd: Decimal
    spot_price_per_hour_usd: Decimal | None
    reserved: ReservedPrice | None = None
    zones: tuple[str, ...] = ()
    source: str = "catalog"


@dataclass(frozen=True)
class SkippedRow:
    """Catalog rows that did not become offerings, grouped by what and why, so the CLI can say so.

    ``item`` is an instance type or an accelerator such as ``"T4:1"``; ``regions`` are where it was seen.
    """

    provider: str
    item: str
    accelerator: Accelerator | None
    reason: str
    regions: tuple[str, ...]
    rows: int
