"""The platform file's ``budgets:`` and ``quotas:``: what each team or project may spend, and use at once.

Budgets are monthly US dollars compared with the FOCUS ledger (docs/configuration.md); quotas cap the
vCPUs and GPUs one team's steps hold at the same time at a site, enforced by the runner's scheduler.
Kept apart from :mod:`stratus.config.platform` so each file has one subject; the Platform model holds them.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from stratus.config.models import SafeName, StrictModel, bounded_int, finite
from stratus.limits import MAX_ACCELERATORS, MAX_BUDGET_USD, MAX_VCPUS

__all__ = ["DEFAULT_ALERTS", "BudgetSpec", "Budgets", "SiteQuota"]

#: Fractions of a budget at which ``stratus plan`` warns, unless a budget sets its own ``alerts``.
DEFAULT_ALERTS: tuple[float, ...] = (0.5, 0.8, 1.0)


def _decimal(value: Any) -> Any:
    # Through str() so 0.1 stays 0.1; a bool is refused rather than read as 1 dollar.
    if isinstance(value, bool):
        raise ValueError("expected a number of US dollars, e.g. 500")
    return Decimal(str(value)) if isinstance(value, float) else value


def _fraction(value: float) -> float:
    if not 0 < value <= 1:
        raise ValueError(
            f"alert {value:g} is not a fraction of the budget; expected a number in (0, 1], e.g. 0.8 for 80%"
        )
    return value


AlertFraction = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_fraction)]

MonthlyUsd = Annotated[
    Decimal,
    BeforeValidator(_decimal),
    Field(gt=0, le=MAX_BUDGET_USD, allow_inf_nan=False, description="US dollars per calendar month"),
]


class BudgetSpec(StrictModel):
    """One team's or project's monthly budget, and the fractions of it at which to warn."""

    monthly_usd: MonthlyUsd
    alerts: list[AlertFraction] = Field(
        default_factory=lambda: list(DEFAULT_ALERTS),
        max_length=20,
        description="fractions of the budget at which spent + planned warns, e.g. [0.5, 0.8, 1.0]",
    )

    @field_validator("alerts")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if any(b <= a for a, b in pairwise(value)):
            raise ValueError(
                f"alerts {value} must be increasing fractions of the budget, each once, e.g. [0.5, 0.8, 1.0]"
            )
        return value


class Budgets(StrictModel):
    """``budgets:``: monthly budgets per team and per project (the pipeline's ``tags``: team, project)."""

    teams: dict[SafeName, BudgetSpec] = Field(
        default_factory=dict, description="team tag → its budget, e.g. risk-ml: {monthly_usd: 500}"
    )
    projects: dict[SafeName, BudgetSpec] = Field(
        default_factory=dict, description="project tag → its budget, e.g. fraud: {monthly_usd: 50}"
    )


class SiteQuota(StrictModel):
    """The most one team's running steps may hold at once at one site; an absent field is no limit."""

    vcpus: Annotated[float, finite(gt=0, le=MAX_VCPUS)] | None = Field(
        default=None, description="vCPUs (the steps' resources.cpus) running at once"
    )
    gpus: Annotated[int, bounded_int(ge=0, le=MAX_ACCELERATORS)] | None = Field(
        default=None, description="accelerator devices (the steps' resources.accelerators count) at once"
    )

    @model_validator(mode="after")
    def _says_something(self) -> SiteQuota:
        if self.vcpus is None and self.gpus is None:
            raise ValueError("a quota needs vcpus, gpus or both, e.g. {gpus: 2, vcpus: 16}")
        return self


#: ``quotas:``: team tag → site → its quota there.
Quotas = dict[SafeName, dict[SafeName, SiteQuota]]
