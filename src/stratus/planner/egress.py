"""Per-GB egress prices between every pair of sites: the platform's overrides first, then the catalog."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import numpy.typing as npt

from stratus.catalog import EgressTable, Location
from stratus.config import Platform

__all__ = ["EgressMatrix", "egress_matrix"]


class EgressMatrix:
    """Exact (Decimal) and solver (float) egress prices, indexed like the site tuple they were built for."""

    def __init__(self, sites: tuple[str, ...], exact: list[list[Decimal]], rules: list[list[str]]) -> None:
        self.sites = sites
        self.exact = exact
        self.rules = rules
        self.usd_per_gb: npt.NDArray[np.float64] = np.array(
            [[float(v) for v in row] for row in exact], dtype=np.float64
        ).reshape(len(sites), len(sites))


def egress_matrix(platform: Platform, table: EgressTable, sites: tuple[str, ...]) -> EgressMatrix:
    """Price every ordered pair of distinct sites; the same site is free."""
    exact: list[list[Decimal]] = []
    rules: list[list[str]] = []
    for src in sites:
        row: list[Decimal] = []
        why: list[str] = []
        for dst in sites:
            price, rule = _price(platform, table, src, dst)
            row.append(price)
            why.append(rule)
        exact.append(row)
        rules.append(why)
    return EgressMatrix(sites, exact, rules)


def _price(platform: Platform, table: EgressTable, src: str, dst: str) -> tuple[Decimal, str]:
    if src == dst:
        return Decimal(0), "same site"
    a, b = platform.sites[src], platform.sites[dst]
    keys = [(src, dst), (src, b.provider), (a.provider, dst), (a.provider, b.provider)]
    if a.provider != b.provider:
        keys += [(src, "internet"), (a.provider, "internet")]
    for from_key, to_key in keys:
        for override in platform.egress:
            if override.from_ == from_key and override.to == to_key:
                return override.usd_per_gb, f"platform override from {from_key} to {to_key}"
    src_loc = Location(provider=a.provider, region=a.region, continent=a.continent or "")
    dst_loc = Location(provider=b.provider, region=b.region, continent=b.continent or "")
    return table.rate_usd_per_gb(src_loc, dst_loc), table.describe(src_loc, dst_loc)
