"""The ``ledger`` table: one FOCUS 1.3 charge row per compute run, transfer, storage period or plan line.

Python attributes are snake_case; the database columns carry the FOCUS column ids (``BilledCost``,
``x_RunId``, ...) so that a SQL user or a BI tool sees the standard's names. Money columns hold integer
micro-dollars (not FOCUS's decimal currency) so sums stay exact everywhere; the CSV export converts.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import JSON, BigInteger, Dialect, Index, Integer, String, TypeDecorator
from sqlalchemy.orm import Mapped, mapped_column

from stratus.state import Base, UtcDateTime

__all__ = ["KINDS", "Kind", "LedgerRow", "StratusPricing"]

Kind = Literal["compute", "transfer", "storage", "planned"]
KINDS: tuple[Kind, ...] = ("compute", "transfer", "storage", "planned")
StratusPricing = Literal["on-demand", "spot", "reserved", "serverless"]


class DecimalText(TypeDecorator[Decimal]):
    """A Decimal kept as its exact text: SQLite would otherwise round-trip NUMERIC through float."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


class LedgerRow(Base):
    """One FOCUS charge row; ``kind`` (x_Kind) separates actual usage from the plan it is compared with."""

    __tablename__ = "ledger"
    __table_args__ = (
        Index("ix_ledger_run_kind", "x_RunId", "x_Kind"),
        Index("ix_ledger_period_start", "ChargePeriodStart"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)

    billed_cost_micro_usd: Mapped[int] = mapped_column("BilledCost", BigInteger)
    effective_cost_micro_usd: Mapped[int] = mapped_column("EffectiveCost", BigInteger)
    list_cost_micro_usd: Mapped[int] = mapped_column("ListCost", BigInteger)
    contracted_cost_micro_usd: Mapped[int] = mapped_column("ContractedCost", BigInteger)
    billing_currency: Mapped[str] = mapped_column("BillingCurrency", String(3), default="USD")

    charge_category: Mapped[str] = mapped_column("ChargeCategory", String(16), default="Usage")
    charge_frequency: Mapped[str] = mapped_column("ChargeFrequency", String(16), default="Usage-Based")
    charge_description: Mapped[str] = mapped_column("ChargeDescription", String(512))
    charge_period_start: Mapped[datetime] = mapped_column("ChargePeriodStart", UtcDateTime)
    charge_period_end: Mapped[datetime] = mapped_column("ChargePeriodEnd", UtcDateTime)

    pricing_category: Mapped[str] = mapped_column("PricingCategory", String(16))
    pricing_quantity: Mapped[Decimal] = mapped_column("PricingQuantity", DecimalText)
    pricing_unit: Mapped[str] = mapped_column("PricingUnit", String(16))

    provider_name: Mapped[str] = mapped_column("ProviderName", String(32))
    service_provider_name: Mapped[str] = mapped_column("ServiceProviderName", String(32))
    region_id: Mapped[str] = mapped_column("RegionId", String(64))
    resource_id: Mapped[str] = mapped_column("ResourceId", String(512))
    resource_name: Mapped[str] = mapped_column("ResourceName", String(256))
    service_category: Mapped[str] = mapped_column("ServiceCategory", String(32))
    service_name: Mapped[str] = mapped_column("ServiceName", String(64))
    sku_id: Mapped[str] = mapped_column("SkuId", String(128))
    tags: Mapped[dict[str, str]] = mapped_column("Tags", JSON, default=dict)

    site: Mapped[str] = mapped_column("x_Site", String(128))
    to_site: Mapped[str | None] = mapped_column("x_ToSite", String(128), nullable=True)
    run_id: Mapped[str] = mapped_column("x_RunId", String(128))
    step: Mapped[str | None] = mapped_column("x_Step", String(128), nullable=True)
    team: Mapped[str | None] = mapped_column("x_Team", String(128), nullable=True)
    project: Mapped[str | None] = mapped_column("x_Project", String(128), nullable=True)
    kind: Mapped[str] = mapped_column("x_Kind", String(16))
    pricing: Mapped[str] = mapped_column("x_Pricing", String(16))
    recorded_at: Mapped[datetime] = mapped_column("x_RecordedAt", UtcDateTime)
