"""Stratus's one convention for data sizes and money, and the only place that converts or formats them.

Sizes: a "GB" anywhere in Stratus (a pipeline's ``size_gb``, the plan, the ledger, reports) is a decimal
gigabyte, 10^9 bytes, the unit AWS and Azure bill transfer and storage in. A provider that bills per
binary gigabyte (GiB, 2^30 bytes; Google Cloud's pricing pages define their "GB" so) is converted here:
its per-GiB catalog rates become per-GB rates for planning, and its ledger rows say ``GiB`` with the
quantity in GiB, so a FOCUS consumer sees exactly what the provider's own bill would show.

Money: amounts are Decimal US dollars. People read them through :func:`format_usd` (``$1,234.567890``:
six places, the ledger's micro-dollar resolution, so a column of figures adds up to its total as
printed); machines (CSV, JSON) read :func:`usd_fixed` (``1234.567890``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

__all__ = [
    "BYTES_PER_GB",
    "BYTES_PER_GIB",
    "DataUnit",
    "bytes_from_gb",
    "bytes_per",
    "format_gb",
    "format_rate",
    "format_usd",
    "gb_from_bytes",
    "per_gb_rate",
    "quantity_in",
    "usd_fixed",
]

DataUnit = Literal["GB", "GiB"]

BYTES_PER_GB = 10**9
BYTES_PER_GIB = 2**30
_BYTES: dict[DataUnit, int] = {"GB": BYTES_PER_GB, "GiB": BYTES_PER_GIB}
_MICRO = Decimal("0.000001")


def bytes_per(unit: DataUnit) -> int:
    """How many bytes one ``unit`` holds: 10^9 for GB, 2^30 for GiB."""
    return _BYTES[unit]


def gb_from_bytes(size_bytes: int) -> Decimal:
    """Bytes → decimal GB, exactly (33,600,490 bytes → 0.03360049)."""
    return Decimal(size_bytes) / BYTES_PER_GB


def bytes_from_gb(size_gb: float | Decimal) -> int:
    """Decimal GB (as a pipeline declares it) → bytes, rounded to the nearest byte."""
    return int((Decimal(str(size_gb)) * BYTES_PER_GB).to_integral_value(rounding=ROUND_HALF_EVEN))


def quantity_in(size_bytes: int, unit: DataUnit) -> Decimal:
    """Bytes → the billing unit a provider uses, exactly (what a FOCUS PricingQuantity holds)."""
    return Decimal(size_bytes) / bytes_per(unit)


def per_gb_rate(rate: Decimal, unit: DataUnit) -> Decimal:
    """A price per ``unit`` (USD/GiB or USD/GB) as USD per decimal GB, the rate the planner multiplies."""
    return rate * BYTES_PER_GB / bytes_per(unit)


def format_gb(size_bytes: int) -> str:
    """A size for people, in decimal GB, exact and never an exponent (``0.03360049 GB``, ``12.5 GB``)."""
    text = format(gb_from_bytes(size_bytes), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} GB"


def usd_fixed(amount: Decimal) -> str:
    """Dollars as exact six-place text for machines (CSV, JSON): ``1234.567890``, never an exponent."""
    return format(amount.quantize(_MICRO, rounding=ROUND_HALF_EVEN), "f")


def format_usd(amount: Decimal | float) -> str:
    """Dollars for people, the same everywhere: ``$1,234.567890``, ``-$0.000120``.

    Six places, rounded half to even like the ledger's micro-dollars, so a printed figure is the
    ledger's figure and totals add up as shown; a float (a gateway's price) is read through ``str``.
    """
    value = (amount if isinstance(amount, Decimal) else Decimal(str(amount))).quantize(
        _MICRO, rounding=ROUND_HALF_EVEN
    )
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.6f}"


def format_rate(amount: Decimal | float, per: str) -> str:
    """A unit price for people: ``$0.020000/GB-month``, ``$0.192000/h``."""
    return f"{format_usd(amount)}/{per}"
