"""Calendar months in UTC: the period budgets are set for and ``--month YYYY-MM`` selects.

A charge belongs to the month its ``ChargePeriodStart`` falls in, as cloud invoices assign usage that
spans midnight of the first; so a month's rows are found by one indexed range on that column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Month"]

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Month:
    """One calendar month: ``start`` inclusive, ``end`` (the next month's first instant) exclusive."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``2025-03`` → March 2025; ValueError naming the expected form otherwise."""
        match = _MONTH.match(text.strip())
        if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
            raise ValueError(f"{text!r} is not a month; expected YYYY-MM, e.g. 2025-03")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, when: datetime) -> Month:
        """The UTC month ``when`` falls in (an aware datetime)."""
        utc = when.astimezone(UTC)
        return cls(utc.year, utc.month)

    @classmethod
    def current(cls) -> Month:
        """This month, in UTC."""
        return cls.of(datetime.now(UTC))

    @property
    def start(self) -> datetime:
        """The month's first instant, UTC."""
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The next month's first instant, UTC (exclusive)."""
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return datetime(year, month, 1, tzinfo=UTC)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"
