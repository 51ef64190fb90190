"""Planned cost as ledger rows (x_Kind = "planned"), so a report can put plan and actuals side by side.

Storing the plan in the same table, in the same columns, means every ``--by`` grouping works for both
without a second code path. Planned rows are not charges: the FOCUS export leaves them out by default.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import delete

from stratus.config import Site
from stratus.ledger.model import LedgerRow, StratusPricing
from stratus.ledger.record import (
    CATEGORY_AI,
    CATEGORY_COMPUTE,
    CATEGORY_NETWORK,
    CATEGORY_STORAGE,
    SERVICE_FUNCTIONS,
    SERVICE_STORAGE,
    SERVICE_TRANSFER,
    SERVICE_VMS,
    Charge,
    Where,
    build_row,
)
from stratus.planner import Placement, Plan, StoredCopy, Transfer
from stratus.state import Database

__all__ = ["record_plan", "transfer_step"]


def record_plan(
    db: Database,
    *,
    run_id: str,
    plan: Plan,
    tags: Mapping[str, str],
    at: datetime | None = None,
    sites: Mapping[str, Site] | None = None,
    accelerated_steps: Collection[str] = (),
) -> None:
    """Write the plan's placements and transfers as planned rows, replacing any earlier plan of the run.

    Call it once when the run starts (calling again on ``--resume`` is harmless: it replaces). ``at`` is
    when the run starts (placement start/finish hours are offsets from it); ``sites`` (the platform's)
    gives transfers their sending site's provider and region and marks serverless sites' steps as
    Functions; ``accelerated_steps`` are the steps whose offering has an accelerator.
    ListCost of a planned row equals its EffectiveCost: a Placement does not carry the on-demand price.
    Each copy the plan leaves at a priced store is one planned month of storage, as the runner records
    one month of each replica it leaves.
    """
    start = at or datetime.now(UTC)
    rows = [_placement_row(run_id, p, tags, start, sites, accelerated_steps) for p in plan.placements]
    rows += [_transfer_row(run_id, t, plan, tags, start, sites) for t in plan.transfers]
    rows += [_storage_row(run_id, c, plan, tags, start, sites) for c in plan.storage if c.monthly_usd > 0]
    with db.session() as session, session.begin():
        session.execute(delete(LedgerRow).where(LedgerRow.run_id == run_id, LedgerRow.kind == "planned"))
        session.add_all(rows)


def _placement_row(
    run_id: str,
    p: Placement,
    tags: Mapping[str, str],
    at: datetime,
    sites: Mapping[str, Site] | None,
    accelerated_steps: Collection[str],
) -> LedgerRow:
    site = sites.get(p.site) if sites else None
    serverless = site is not None and site.compute.backend == "serverless"
    pricing: StratusPricing = "serverless" if serverless else p.pricing
    begin = at + timedelta(hours=p.start_hours)
    finish = at + timedelta(hours=max(p.finish_hours, p.start_hours + p.hours))
    charge = Charge(
        step=p.step,
        kind="planned",
        pricing=pricing,
        effective_usd=p.cost_usd,
        list_usd=p.cost_usd,
        quantity=Decimal(str(p.hours)),
        unit="hours",
        service_category=CATEGORY_AI if p.step in accelerated_steps else CATEGORY_COMPUTE,
        service_name=SERVICE_FUNCTIONS if serverless else SERVICE_VMS,
        sku=p.offering,
        resource_id=f"{p.site}/{run_id}/{p.step}",
        resource_name=p.step,
        description=f"planned: {p.step} on {p.offering} ({pricing}) at {p.site}",
        start=begin,
        end=finish,
    )
    return build_row(Where(run_id, p.site, p.provider, p.region, tags), charge)


def _transfer_row(
    run_id: str,
    t: Transfer,
    plan: Plan,
    tags: Mapping[str, str],
    at: datetime,
    sites: Mapping[str, Site] | None,
) -> LedgerRow:
    provider, region = _provider_region(t.from_site, plan, sites)
    gb = Decimal(str(t.size_gb))
    charge = Charge(
        step=transfer_step(t),
        kind="planned",
        pricing="on-demand",
        effective_usd=t.cost_usd,
        list_usd=t.cost_usd,
        quantity=gb,
        unit="GB",
        service_category=CATEGORY_NETWORK,
        service_name=SERVICE_TRANSFER,
        sku=f"egress:{t.from_site}->{t.to_site}",
        resource_id=f"{t.from_site}->{t.to_site}/{t.artifact}",
        resource_name=t.artifact,
        description=f"planned: copy {t.artifact} from {t.from_site} to {t.to_site} ({t.reason})",
        start=at,
        end=at,
        to_site=t.to_site,
    )
    return build_row(Where(run_id, t.from_site, provider, region, tags), charge)


def _storage_row(
    run_id: str,
    c: StoredCopy,
    plan: Plan,
    tags: Mapping[str, str],
    at: datetime,
    sites: Mapping[str, Site] | None,
) -> LedgerRow:
    provider, region = _provider_region(c.site, plan, sites)
    step = c.artifact.split(".", 1)[0] if not c.artifact.startswith("dataset:") else None
    charge = Charge(
        step=step,
        kind="planned",
        pricing="on-demand",
        effective_usd=c.monthly_usd,
        list_usd=c.monthly_usd,
        quantity=Decimal(str(c.size_gb)),
        unit="GB-months",
        service_category=CATEGORY_STORAGE,
        service_name=SERVICE_STORAGE,
        sku=f"object-storage:{provider}:{region}",
        resource_id=f"{c.site}/{c.artifact}",
        resource_name=c.artifact,
        description=f"planned: keep {c.artifact} at {c.site} for a month at {c.source}",
        start=at,
        end=at + timedelta(hours=730),
    )
    return build_row(Where(run_id, c.site, provider, region, tags), charge)


def transfer_step(t: Transfer) -> str | None:
    """The step a copy is charged to, as the runner charges actual copies: a replica to the step that
    produced the artifact, an input fetch to the (first) step that reads it; None when neither is known.

    A Transfer carries this only in its ``reason`` text ("replica (dual-write)", "input of a, b").
    """
    if t.reason.startswith("input of "):
        readers = t.reason.removeprefix("input of ").split(",")
        return readers[0].strip() or None
    if t.reason.startswith("replica") and "." in t.artifact and not t.artifact.startswith("dataset:"):
        return t.artifact.split(".", 1)[0]
    return None


def _provider_region(site: str, plan: Plan, sites: Mapping[str, Site] | None) -> tuple[str, str]:
    if sites and site in sites:
        return sites[site].provider, sites[site].region
    for p in plan.placements:
        if p.site == site:
            return p.provider, p.region
    raise ValueError(
        f"transfer from site {site!r}: no step of the plan runs there, so its provider and region are "
        "unknown; pass sites=platform.sites to record_plan"
    )
