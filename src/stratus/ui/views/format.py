"""How the dashboard writes sizes, money, durations and times (Jinja filters; plain text, escaped later)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from stratus.units import format_usd

__all__ = ["duration", "human_bytes", "timestamp", "usd"]

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_bytes(size: int | None) -> str:
    """Decimal units, as providers bill data: 1,500,000,000 bytes → ``1.50 GB``."""
    if size is None:
        return "-"
    value = float(size)
    for unit in _UNITS:
        if abs(value) < 1000 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def usd(amount: Decimal | float | int | None) -> str:
    """Six places, as the CLI and the FOCUS export write money: ``$0.053458``, ``-$1.143970``."""
    if amount is None:
        return "-"
    return format_usd(amount if isinstance(amount, Decimal | float) else Decimal(amount))


def duration(seconds: float | None) -> str:
    """``2h 03m``, ``4m 07s`` or ``12.3s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def timestamp(at: datetime | None) -> str:
    """UTC, to the second: ``2026-12-03 12:20:50``."""
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M:%S")
