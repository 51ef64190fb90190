"""The runner's only doorway to the ledger: every compute-second, moved byte and stored byte of a run.

Costs are read back from the ledger for the run report, so what ``stratus run`` prints and what
``stratus cost report`` sums can never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from stratus.catalog import Catalog, StorageTable
from stratus.config import Platform, Resources
from stratus.executors import Executor, PricedPerUse, ServerlessExecutor
from stratus.ledger import (
    Where,
    record_compute,
    record_function,
    record_plan,
    record_storage,
    record_transfer,
)
from stratus.planner import Placement, Plan
from stratus.state import Database

__all__ = ["Biller"]

_MS = Decimal("0.001")
#: How long a replica a run leaves is charged for in its ledger: one average month (730 h), the period
#: storage prices are quoted for, so the row reads as "what keeping this costs per month".
STORAGE_PERIOD = timedelta(hours=730)


class Biller:
    """Writes one run's FOCUS rows; each call is one committed transaction."""

    def __init__(
        self,
        db: Database,
        run_id: str,
        platform: Platform,
        tags: Mapping[str, str],
        storage: StorageTable | None = None,
    ) -> None:
        self.db = db
        self.run_id = run_id
        self.platform = platform
        self.tags = dict(tags)
        self.storage_rates = storage if storage is not None else Catalog.bundled().storage
        # Whose and where every row of this run at a site is: built once per site, passed with each charge.
        self.where = {
            name: Where(run_id, name, site.provider, site.region, self.tags)
            for name, site in platform.sites.items()
        }

    def plan(self, plan: Plan, accelerated: set[str]) -> None:
        """The plan the run starts from, so the report shows planned next to actual."""
        record_plan(
            self.db,
            run_id=self.run_id,
            plan=plan,
            tags=self.tags,
            sites=self.platform.sites,
            accelerated_steps=accelerated,
        )

    def compute(
        self,
        *,
        step: str,
        placement: Placement,
        executor: Executor,
        resources: Resources,
        list_price_per_hour_usd: Decimal,
        accelerator: str | None,
        seconds: float,
        started: datetime,
        ended: datetime,
    ) -> None:
        """One attempt: per GB-second and request on a function site, else per hour of the offering."""
        where = self.where[placement.site]
        if isinstance(executor, ServerlessExecutor):
            spec = executor.spec
            billed_s = Decimal(str(seconds)).quantize(_MS, rounding=ROUND_CEILING)
            record_function(
                self.db,
                where,
                step=step,
                gb_seconds=Decimal(str(executor.memory_gb(resources))) * billed_s,
                requests=1,
                usd_per_gb_second=spec.usd_per_gb_second,
                usd_per_request=spec.usd_per_request,
                started=started,
                ended=ended,
                offering=placement.offering,
            )
            return
        if isinstance(executor, PricedPerUse):
            raise TypeError(f"no ledger mapping for the per-use executor {type(executor).__name__}")
        record_compute(
            self.db,
            where,
            step=step,
            offering=placement.offering,
            pricing=placement.pricing,
            price_per_hour_usd=placement.price_per_hour_usd,
            list_price_per_hour_usd=list_price_per_hour_usd,
            seconds=seconds,
            started=started,
            ended=ended,
            accelerator=accelerator,
        )

    def transfer(
        self,
        *,
        step: str | None,
        artifact: str,
        from_site: str,
        to_site: str,
        size_bytes: int,
        usd_per_gb: Decimal,
        at: datetime,
    ) -> None:
        """A copy between sites, charged to the sender at the platform's egress price."""
        record_transfer(
            self.db,
            self.where[from_site],
            step=step,
            artifact=artifact,
            to_site=to_site,
            size_bytes=size_bytes,
            usd_per_gb=usd_per_gb,
            at=at,
        )

    def storage(
        self, *, site: str, artifact: str, size_bytes: int, start: datetime, step: str | None
    ) -> None:
        """A replica the run leaves at a site: its first month of storage from when it was written,
        priced from the catalog's storage rate for the site's provider and region (with its source)."""
        where = self.where[site]
        record_storage(
            self.db,
            where,
            artifact=artifact,
            size_bytes=size_bytes,
            start=start,
            end=start + STORAGE_PERIOD,
            rate=self.storage_rates.rate(where.provider, where.region),
            step=step,
        )
