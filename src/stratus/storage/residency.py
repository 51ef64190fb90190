"""What a residency bound allows, and how it is written in the manifest (one rule for every check).

A bound is the set of jurisdictions an artifact is bound to. Each one is a promise the bytes made, so a
place must satisfy all of them: ``{"EU"}`` allows EU sites only, and ``{"EU", "US"}`` (bytes that are
both an EU-resident and a US-resident artifact) allows no site at all, as the planner reads it too.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["allows", "format_residency", "parse_residency", "strictest"]


def allows(jurisdiction: str | None, residency: frozenset[str]) -> bool:
    """Whether a place in ``jurisdiction`` (None: undeclared) may hold data bound to ``residency``."""
    if not residency:
        return True
    return jurisdiction is not None and all(bound == jurisdiction.upper() for bound in residency)


def strictest(*bounds: Iterable[str]) -> frozenset[str]:
    """The bound that keeps every promise: the union of the jurisdictions of each bound."""
    return frozenset(j.upper() for bound in bounds for j in bound if j)


def parse_residency(text: str | None) -> frozenset[str]:
    """The manifest's ``"EU"`` / ``"EU,UK"`` / NULL as a bound."""
    return frozenset(part.strip().upper() for part in (text or "").split(",") if part.strip())


def format_residency(bound: Iterable[str]) -> str | None:
    """A bound as the manifest stores it: sorted, comma-separated; None when unbound."""
    return ",".join(sorted(set(bound))) or None
