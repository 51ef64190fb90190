"""The copies a plan leaves at each site, priced per month from the catalog's storage rates.

Every step output stays where it was written and wherever it was copied (replicas, inputs fetched to a
reader's site: the stores are content-addressed and keep what they receive); a dataset's copies at other
sites are new too. Its original location is the user's, not the run's, so it is not counted.
"""

from __future__ import annotations

from decimal import Decimal

from stratus.catalog import StorageTable
from stratus.config import Pipeline, Platform
from stratus.planner.plan import Placement, StoredCopy, Transfer

__all__ = ["copies_left"]


def copies_left(
    pipeline: Pipeline,
    platform: Platform,
    storage: StorageTable,
    placements: tuple[Placement, ...],
    transfers: tuple[Transfer, ...],
) -> tuple[StoredCopy, ...]:
    """One StoredCopy per (artifact, site) the plan writes, in plan order; sizes as the plan priced them."""
    where: dict[tuple[str, str], float] = {}
    for p in placements:
        for output, spec in pipeline.steps[p.step].outputs.items():
            where.setdefault((f"{p.step}.{output}", p.site), spec.size_gb)
    for t in transfers:
        where.setdefault((t.artifact, t.to_site), t.size_gb)
    copies = []
    for (artifact, site_name), size_gb in where.items():
        site = platform.sites[site_name]
        rate = storage.rate(site.provider, site.region)
        per_gb = rate.usd_per_gb_month
        copies.append(
            StoredCopy(
                artifact=artifact,
                site=site_name,
                size_gb=size_gb,
                usd_per_gb_month=per_gb,
                monthly_usd=per_gb * Decimal(str(size_gb)),
                source=f"{rate.usd_per_unit_month} USD/{rate.unit}-month: {rate.note} ({rate.source})",
            )
        )
    return tuple(copies)
