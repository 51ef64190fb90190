"""Typed compute resources and the ``"A100:8"`` shorthand users type."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stratus.limits import MAX_ACCELERATORS

__all__ = ["Accelerator", "parse_accelerator"]

_SHORTHAND = re.compile(r"^\s*(?P<name>[A-Za-z][A-Za-z0-9_.\-]*)\s*(?::\s*(?P<count>\d+)\s*)?$")


@dataclass(frozen=True, order=True)
class Accelerator:
    """An accelerator request or offer: a device name and an exact count, as SkyPilot matches them."""

    name: str
    count: int = 1

    def matches(self, other: Accelerator) -> bool:
        """Same device (case-insensitive) and exactly the same count."""
        return self.name.lower() == other.name.lower() and self.count == other.count

    def __str__(self) -> str:
        return f"{self.name}:{self.count}"


def parse_accelerator(text: str) -> Accelerator:
    """Parse ``"A100:8"`` (or ``"A100"``, meaning one). Raises ValueError saying what is expected."""
    match = _SHORTHAND.match(text)
    if match is None:
        raise ValueError(f"accelerator {text!r} does not parse; expected NAME or NAME:COUNT, e.g. 'A100:8'")
    digits = match.group("count") or "1"
    count = int(digits) if len(digits) <= 9 else MAX_ACCELERATORS + 1
    if not 1 <= count <= MAX_ACCELERATORS:
        shown = digits if len(digits) <= 12 else f"{digits[:12]}..."
        raise ValueError(
            f"accelerator {text[:60]!r} has count {shown}; "
            f"expected a count of at least 1 and at most {MAX_ACCELERATORS}"
        )
    return Accelerator(name=match.group("name"), count=count)
