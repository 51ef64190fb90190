"""Bundled object-storage list prices, so stored byte-months can be priced without a price feed.

Approximate public list prices, USD per GB-month, for the first pricing tier of each provider's default
object-storage class in its cheapest US regions (checked against the providers' pricing pages):

- aws: 0.023 — "Amazon S3 pricing", S3 Standard, first 50 TB / month.
- gcp: 0.020 — "Cloud Storage pricing", Standard storage, regional (e.g. us-central1).
- azure: 0.0184 — "Azure Blob Storage pricing", Hot tier, LRS redundancy, first 50 TB / month.
- onprem, local: 0 — the disks are already paid for; their cost belongs in the site's hourly rates.

Regions, tiers and redundancy classes differ by a few per cent to a few times; pass an explicit
``usd_per_gb_month`` to :func:`stratus.ledger.record_storage` where a negotiated or regional price is
known.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

__all__ = ["STORAGE_USD_PER_GB_MONTH", "storage_usd_per_gb_month"]

STORAGE_USD_PER_GB_MONTH: Mapping[str, Decimal] = MappingProxyType(
    {
        "aws": Decimal("0.023"),
        "gcp": Decimal("0.020"),
        "azure": Decimal("0.0184"),
        "onprem": Decimal(0),
        "local": Decimal(0),
    }
)


def storage_usd_per_gb_month(provider: str) -> Decimal:
    """The bundled list price for ``provider``; ValueError naming the known providers otherwise."""
    try:
        return STORAGE_USD_PER_GB_MONTH[provider]
    except KeyError:
        known = ", ".join(STORAGE_USD_PER_GB_MONTH)
        raise ValueError(
            f"no bundled storage price for provider {provider!r}; expected one of {known}, "
            "or pass usd_per_gb_month explicitly"
        ) from None
