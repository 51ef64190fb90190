"""In which unit each provider bills data: decimal GB, or binary GiB.

AWS and Azure price transfer and storage per GB (10^9 bytes). Google Cloud's pricing pages price per
"GB" defined as 2^30 bytes, a GiB (Cloud Storage: "1 GB = 2^30 bytes", see ``data/SOURCES.md``), so the
catalog's gcp figures are USD per GiB. Stratus plans in decimal GB (:mod:`stratus.units`) and converts
a per-GiB price at the one place it is read; the ledger records a GiB provider's rows in GiB and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from stratus.units import DataUnit

__all__ = ["BILLED_DATA_UNIT", "data_unit"]

BILLED_DATA_UNIT: Mapping[str, DataUnit] = MappingProxyType({"gcp": "GiB"})


def data_unit(provider: str) -> DataUnit:
    """The unit ``provider`` bills moved and stored bytes in: ``GiB`` for gcp, ``GB`` for the rest."""
    return BILLED_DATA_UNIT.get(provider, "GB")
