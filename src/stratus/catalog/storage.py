"""Object-storage prices per month, from the bundled ``storage.csv`` (sources in ``data/SOURCES.md``).

Each row is a provider's first-tier price for its default storage class, in the unit the provider's
price list uses (GB or GiB) and with where the figure comes from, so a plan or ledger row priced from it
can name its source. A row with ``regions`` wins for those regions; the provider's row without regions
prices every other region. A team can replace the table with ``.stratus/catalog/storage.csv``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TextIO

from stratus.errors import CatalogError
from stratus.limits import MAX_PRICE_USD
from stratus.units import DataUnit, per_gb_rate

__all__ = ["StorageRate", "StorageTable"]

_COLUMNS = ("provider", "regions", "usd_per_unit_month", "unit", "note", "source")
_UNITS: tuple[DataUnit, ...] = ("GB", "GiB")


@dataclass(frozen=True)
class StorageRate:
    """One provider's (or one set of regions') storage price per unit-month, and its source."""

    provider: str
    regions: frozenset[str]
    usd_per_unit_month: Decimal
    unit: DataUnit
    note: str
    source: str

    @property
    def usd_per_gb_month(self) -> Decimal:
        """The price per decimal GB-month, what the planner multiplies declared sizes by."""
        return per_gb_rate(self.usd_per_unit_month, self.unit)

    def describe(self) -> str:
        """``gcp: 0.020 USD/GiB-month (Standard storage, regional; https://...)``."""
        price = f"{self.usd_per_unit_month} USD/{self.unit}-month"
        return f"{self.provider}: {price} ({self.note}; {self.source})"


def _parse(row: dict[str, str], label: str, line: int) -> StorageRate:
    def fail(column: str, message: str) -> CatalogError:
        return CatalogError(f"column {column!r}: {message}", file=label, line=line)

    provider = row["provider"].strip().lower()
    if not provider:
        raise fail("provider", "empty provider; name the one that charges (aws, gcp, azure, onprem)")
    try:
        price = Decimal(row["usd_per_unit_month"].strip())
    except InvalidOperation:
        price = Decimal("NaN")
    if not price.is_finite() or price < 0 or price > MAX_PRICE_USD:
        raise fail(
            "usd_per_unit_month",
            f"{row['usd_per_unit_month']!r} is not a number of USD between 0 and {MAX_PRICE_USD:,}",
        )
    unit = row["unit"].strip()
    if unit not in _UNITS:
        raise fail("unit", f"{unit!r} is not a data unit; expected GB (10^9 bytes) or GiB (2^30 bytes)")
    source = row["source"].strip()
    if not source:
        raise fail("source", "empty source; say where the price comes from")
    return StorageRate(
        provider=provider,
        regions=frozenset(row["regions"].split()),
        usd_per_unit_month=price,
        unit=unit,
        note=row["note"].strip(),
        source=source,
    )


class StorageTable:
    """Storage prices by provider and region; answers "what does keeping a GB here for a month cost?"."""

    def __init__(self, rates: tuple[StorageRate, ...], label: str = "storage.csv") -> None:
        self.rates = rates
        self.label = label

    @classmethod
    def read(cls, stream: TextIO, label: str) -> StorageTable:
        """Parse ``storage.csv``; raises CatalogError naming file, line and column."""
        reader = csv.DictReader(stream)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in _COLUMNS if name not in header]
        if missing:
            raise CatalogError(
                f"missing column {missing[0]!r}; expected {','.join(_COLUMNS)}", file=label, line=1
            )
        rates: list[StorageRate] = []
        for row in reader:
            if any(value is None for value in row.values()):
                raise CatalogError(
                    f"row has fewer fields than the header ({len(header)})", file=label, line=reader.line_num
                )
            rates.append(_parse(row, label, reader.line_num))
        return cls(tuple(rates), label)

    def rate(self, provider: str, region: str) -> StorageRate:
        """The rate for ``region`` of ``provider``: its own row, else the provider's default row.

        Raises CatalogError naming the providers the table knows when ``provider`` has no row.
        """
        rows = [r for r in self.rates if r.provider == provider]
        for row in rows:
            if region in row.regions:
                return row
        for row in rows:
            if not row.regions:
                return row
        known = ", ".join(sorted({r.provider for r in self.rates}))
        raise CatalogError(
            f"no storage price for {provider} {region}; the table knows {known}: add a row "
            "(provider,regions,usd_per_unit_month,unit,note,source) to .stratus/catalog/storage.csv",
            file=self.label,
        )
