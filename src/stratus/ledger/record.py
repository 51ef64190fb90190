"""What the runner calls as work happens: each function writes its FOCUS rows in one short transaction.

The row is committed before the call returns, so a run killed right after a step still has that step's
cost on the books. Inputs are validated here (negative durations, naive datetimes) because a wrong ledger
row is silent and a wrong call should fail loudly in the runner's tests instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from stratus import units
from stratus.catalog import Catalog, StorageRate, data_unit
from stratus.ledger import money
from stratus.ledger.model import Kind, LedgerRow, StratusPricing
from stratus.state import Database

__all__ = [
    "FOCUS_PRICING_CATEGORY",
    "Charge",
    "Where",
    "record_compute",
    "record_function",
    "record_storage",
    "record_transfer",
]

# FOCUS PricingCategory values: on-demand is the Standard price, spot is Dynamic, reserved is Committed.
FOCUS_PRICING_CATEGORY: Mapping[str, str] = {
    "on-demand": "Standard",
    "spot": "Dynamic",
    "reserved": "Committed",
    "serverless": "Standard",
}

SERVICE_VMS = "Virtual Machines"
SERVICE_FUNCTIONS = "Functions"
SERVICE_TRANSFER = "Data Transfer"
SERVICE_STORAGE = "Object Storage"
CATEGORY_COMPUTE = "Compute"
CATEGORY_AI = "AI and Machine Learning"
CATEGORY_NETWORK = "Networking"
CATEGORY_STORAGE = "Storage"


@dataclass(frozen=True)
class Where:
    """Whose and where: the run a row belongs to, its tags, and the site that bills it with that site's
    provider and region (whose price list and FOCUS ProviderName/RegionId the row carries).

    The same for every row one run writes at one site, so a caller builds it once per site
    (the runner's biller does) and passes it with each charge.
    """

    run_id: str
    site: str
    provider: str
    region: str
    tags: Mapping[str, str]


@dataclass(frozen=True)
class Charge:
    """What was bought, for which step, how much, for how long, and at what price (effective and
    on-demand list): the part of a row that differs from charge to charge at one :class:`Where`."""

    step: str | None
    kind: Kind
    pricing: StratusPricing
    effective_usd: Decimal
    list_usd: Decimal
    quantity: Decimal
    unit: str
    service_category: str
    service_name: str
    sku: str
    resource_id: str
    resource_name: str
    description: str
    start: datetime
    end: datetime
    to_site: str | None = None


def build_row(where: Where, charge: Charge, *, now: datetime | None = None) -> LedgerRow:
    """One LedgerRow from its parts; billed = effective because Stratus has no invoice-level credits."""
    if not where.run_id:
        raise ValueError("run_id is empty; every ledger row belongs to a run")
    _aware(charge.start, "start")
    _aware(charge.end, "end")
    if charge.end < charge.start:
        raise ValueError(f"charge period ends ({charge.end}) before it starts ({charge.start})")
    for label, value in (("quantity", charge.quantity), ("cost", charge.effective_usd)):
        if value < 0:
            raise ValueError(f"{label} {value} is negative; ledger rows record usage, not credits")
    effective = money.to_micros(charge.effective_usd)
    tags = {str(k): str(v) for k, v in sorted(where.tags.items())}
    return LedgerRow(
        billed_cost_micro_usd=effective,
        effective_cost_micro_usd=effective,
        list_cost_micro_usd=money.to_micros(charge.list_usd),
        contracted_cost_micro_usd=effective,
        billing_currency="USD",
        charge_category="Usage",
        charge_frequency="Usage-Based",
        charge_description=charge.description[:512],
        charge_period_start=charge.start,
        charge_period_end=charge.end,
        pricing_category=FOCUS_PRICING_CATEGORY[charge.pricing],
        pricing_quantity=_tidy(charge.quantity),
        pricing_unit=charge.unit,
        provider_name=where.provider,
        service_provider_name=where.provider,
        region_id=where.region,
        resource_id=charge.resource_id,
        resource_name=charge.resource_name,
        service_category=charge.service_category,
        service_name=charge.service_name,
        sku_id=charge.sku,
        tags=tags,
        site=where.site,
        to_site=charge.to_site,
        run_id=where.run_id,
        step=charge.step,
        team=tags.get("team"),
        project=tags.get("project"),
        kind=charge.kind,
        pricing=charge.pricing,
        recorded_at=now or datetime.now(UTC),
    )


def write_rows(db: Database, rows: Iterable[LedgerRow]) -> None:
    """Commit ``rows`` in one transaction: all of a call's rows land together or not at all."""
    with db.session() as session, session.begin():
        session.add_all(list(rows))


def record_compute(
    db: Database,
    where: Where,
    *,
    step: str,
    offering: str,
    pricing: StratusPricing,
    price_per_hour_usd: Decimal,
    list_price_per_hour_usd: Decimal,
    seconds: float,
    started: datetime,
    ended: datetime,
    accelerator: str | None = None,
) -> None:
    """Record one attempt of a step on a machine at ``where``, billed per hour of ``seconds``.

    ``price_per_hour_usd`` is what was paid (spot or reserved rate); ``list_price_per_hour_usd`` the
    on-demand price of the same offering, so ListCost − EffectiveCost shows what spot/reserved saved.
    An ``accelerator`` (e.g. ``"L4:1"``) files the row under "AI and Machine Learning". Pricing
    "serverless" files it under Functions at an hourly rate, as the planner prices functions; prefer
    :func:`record_function` when GB-seconds and requests are measured.
    """
    if seconds < 0:
        raise ValueError(f"seconds {seconds} is negative")
    hours = Decimal(str(seconds)) / 3600
    serverless = pricing == "serverless"
    category = CATEGORY_AI if accelerator else CATEGORY_COMPUTE
    charge = Charge(
        step=step,
        kind="compute",
        pricing=pricing,
        effective_usd=price_per_hour_usd * hours,
        list_usd=list_price_per_hour_usd * hours,
        quantity=hours,
        unit="hours",
        service_category=category,
        service_name=SERVICE_FUNCTIONS if serverless else SERVICE_VMS,
        sku=offering,
        resource_id=f"{where.site}/{where.run_id}/{step}",
        resource_name=step,
        description=f"{step} on {offering} ({pricing}) at {where.site}",
        start=started,
        end=ended,
    )
    write_rows(db, [build_row(where, charge)])


def record_function(
    db: Database,
    where: Where,
    *,
    step: str,
    gb_seconds: Decimal | float,
    requests: int,
    usd_per_gb_second: Decimal,
    usd_per_request: Decimal,
    started: datetime,
    ended: datetime,
    offering: str = "function",
) -> None:
    """Record a serverless invocation at ``where``: one GB-seconds row and, when ``requests`` > 0, one
    requests row.

    Both rows are written together; the requests row takes the rounding remainder so that the two
    sum to the invocation's cost rounded once (a single request, 0.2 µ$, would otherwise vanish).
    """
    memory_time = Decimal(str(gb_seconds))
    if memory_time < 0 or requests < 0:
        raise ValueError(f"gb_seconds {gb_seconds} and requests {requests} must not be negative")
    compute_usd = usd_per_gb_second * memory_time
    total_micros = money.to_micros(compute_usd + usd_per_request * requests)
    compute_micros = money.to_micros(compute_usd)

    def charge(usd: Decimal, quantity: Decimal, unit: str, what: str) -> Charge:
        return Charge(
            step=step,
            kind="compute",
            pricing="serverless",
            effective_usd=usd,
            list_usd=usd,
            quantity=quantity,
            unit=unit,
            service_category=CATEGORY_COMPUTE,
            service_name=SERVICE_FUNCTIONS,
            sku=offering,
            resource_id=f"{where.site}/{where.run_id}/{step}",
            resource_name=step,
            description=f"{step} as {offering} at {where.site}: {what}",
            start=started,
            end=ended,
        )

    rows = [build_row(where, charge(compute_usd, memory_time, "GB-seconds", "memory × time"))]
    if requests > 0:
        remainder = money.from_micros(total_micros - compute_micros)
        rows.append(build_row(where, charge(remainder, Decimal(requests), "requests", "invocations")))
    write_rows(db, rows)


def record_transfer(
    db: Database,
    where: Where,
    *,
    step: str | None,
    artifact: str,
    to_site: str,
    size_bytes: int,
    usd_per_gb: Decimal,
    at: datetime,
) -> None:
    """Record bytes copied between sites, charged to the sending site (egress is billed at the source).

    ``where`` is the sending site; ``step`` is the step the copy was made for, if any;
    ``usd_per_gb`` is per decimal GB (Stratus's unit). The row's PricingUnit is the unit the sender
    bills in: ``GB`` (10^9 bytes), or ``GiB`` for a provider that bills per GiB (gcp), in which case
    PricingQuantity is in GiB and the description gives the per-GiB rate. The cost is the same either way.
    A copy of 0 bytes (the destination already held the object) costs nothing and writes no row.
    """
    if size_bytes < 0:
        raise ValueError(f"size_bytes {size_bytes} is negative")
    if size_bytes == 0:
        return
    from_site, provider = where.site, where.provider
    unit = data_unit(provider)
    quantity = units.quantity_in(size_bytes, unit)
    usd = usd_per_gb * units.gb_from_bytes(size_bytes)
    billed = f"{size_bytes} bytes = {_plain(quantity)} {unit}"
    if unit != "GB":
        rate = usd_per_gb * units.bytes_per(unit) / units.BYTES_PER_GB
        billed += f"; {provider} bills per {unit}: {_plain(rate)} USD/{unit} (= {_plain(usd_per_gb)} USD/GB)"
    charge = Charge(
        step=step,
        kind="transfer",
        pricing="on-demand",
        effective_usd=usd,
        list_usd=usd,
        quantity=quantity,
        unit=unit,
        service_category=CATEGORY_NETWORK,
        service_name=SERVICE_TRANSFER,
        sku=f"egress:{from_site}->{to_site}",
        resource_id=f"{from_site}->{to_site}/{artifact}",
        resource_name=artifact,
        description=f"copy {artifact} from {from_site} to {to_site} ({billed})",
        start=at,
        end=at,
        to_site=to_site,
    )
    write_rows(db, [build_row(where, charge)])


def record_storage(
    db: Database,
    where: Where,
    *,
    artifact: str,
    size_bytes: int,
    start: datetime,
    end: datetime,
    rate: StorageRate | None = None,
    step: str | None = None,
) -> None:
    """Record ``size_bytes`` held at ``where`` from ``start`` to ``end``, in unit-months at ``rate``.

    ``rate`` defaults to the bundled catalog's price for the site's provider and region; the row's PricingUnit
    is that rate's unit (``GB-months``, or ``GiB-months`` for gcp) and its description names the source.
    A month is 730 hours, as the clouds prorate. A free rate (owned disks) writes no row: the ledger
    holds charges, and a zero row would read as a price nobody set.
    """
    if size_bytes < 0:
        raise ValueError(f"size_bytes {size_bytes} is negative")
    site, provider, region = where.site, where.provider, where.region
    price = rate if rate is not None else Catalog.bundled().storage.rate(provider, region)
    _aware(start, "start")
    _aware(end, "end")
    if price.usd_per_unit_month == 0 or size_bytes == 0:
        return
    held_hours = Decimal(str((end - start).total_seconds())) / 3600
    months = units.quantity_in(size_bytes, price.unit) * held_hours / money.HOURS_PER_MONTH
    charge = Charge(
        step=step,
        kind="storage",
        pricing="on-demand",
        effective_usd=price.usd_per_unit_month * months,
        list_usd=price.usd_per_unit_month * months,
        quantity=months,
        unit=f"{price.unit}-months",
        service_category=CATEGORY_STORAGE,
        service_name=SERVICE_STORAGE,
        sku=f"object-storage:{provider}:{region}",
        resource_id=f"{site}/{artifact}",
        resource_name=artifact,
        description=(
            f"store {artifact} ({size_bytes} bytes) at {site} for {_plain(held_hours)} h at "
            f"{price.usd_per_unit_month} USD/{price.unit}-month ({price.note}; source: {price.source})"
        ),
        start=start,
        end=end,
    )
    write_rows(db, [build_row(where, charge)])


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None:
        raise ValueError(
            f"{name} {value!r} has no time zone; pass an aware datetime such as datetime.now(UTC)"
        )


def _tidy(quantity: Decimal) -> Decimal:
    # Twelve places is finer than any meter (a picosecond-hour); it keeps 1/3600 from printing 28 digits.
    return quantity.quantize(Decimal("1e-12")).normalize() if quantity else Decimal(0)


def _plain(quantity: Decimal) -> str:
    """``_tidy`` as people read it in a description: 0.000000203, never 2.03E-7."""
    return format(_tidy(quantity), "f")
