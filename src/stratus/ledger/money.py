"""Money and quantity arithmetic for the ledger: exact integers in the database, Decimal at the edges.

Rows hold integer micro-dollars so that sums in SQL are exact on every backend (SQLite has no decimal
type); each row is rounded once, half to even, so no bias accumulates across many small rows.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from stratus import units

__all__ = [
    "HOURS_PER_MONTH",
    "MICROS_PER_USD",
    "format_usd",
    "from_micros",
    "to_micros",
]

MICROS_PER_USD = 1_000_000
# The average month (365 × 24 / 12), the length AWS, GCP and Azure use to prorate GB-month prices.
HOURS_PER_MONTH = Decimal(730)

_MICRO = Decimal("0.000001")


def to_micros(usd: Decimal) -> int:
    """US dollars → integer micro-dollars, rounded half to even (banker's rounding)."""
    return int((usd * MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def from_micros(micros: int) -> Decimal:
    """Integer micro-dollars → dollars as a Decimal with exactly six places (``Decimal('0.053458')``)."""
    return (Decimal(micros) / MICROS_PER_USD).quantize(_MICRO)


def format_usd(micros: int) -> str:
    """Six-place fixed-point text, never exponent notation: what CSV and JSON exports carry.

    People read money through :func:`stratus.units.format_usd` (the same six places, with ``$``).
    """
    return units.usd_fixed(from_micros(micros))
