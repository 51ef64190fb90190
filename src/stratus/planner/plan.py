"""The planner's output: a frozen value you can diff, serialise and explain."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from stratus.planner.sizes import SizeEstimate

__all__ = [
    "Alternative",
    "Participant",
    "Placement",
    "Plan",
    "Pricing",
    "Rejection",
    "StoredCopy",
    "Transfer",
]

Pricing = Literal["on-demand", "spot", "reserved"]
Objective = Literal["cost", "time"]


def _usd(value: Decimal) -> float:
    return float(round(value, 6))


@dataclass(frozen=True)
class Participant:
    """Another machine of a multi-site step (a rank, or a federated participant) and its compute cost."""

    site: str
    provider: str
    region: str
    offering: str
    pricing: Pricing
    price_per_hour_usd: Decimal
    cost_usd: Decimal


@dataclass(frozen=True)
class Placement:
    """Where one step runs, on what, how it is paid for, and what it costs.

    For a multi-site step, ``site`` is the coordinator (rank 0, or the federated server), ``participants``
    the other machines, and ``cost_usd`` the whole step: every machine plus the traffic between them.
    """

    step: str
    site: str
    provider: str
    region: str
    offering: str
    pricing: Pricing
    price_per_hour_usd: Decimal
    hours: float
    cost_usd: Decimal
    start_hours: float = 0.0
    finish_hours: float = 0.0
    participants: tuple[Participant, ...] = ()


@dataclass(frozen=True)
class Transfer:
    """One copy of an artifact between sites, and why it is needed."""

    artifact: str
    from_site: str
    to_site: str
    size_gb: float
    usd_per_gb: Decimal
    cost_usd: Decimal
    reason: str


@dataclass(frozen=True)
class StoredCopy:
    """A copy of an artifact the run will leave at a site, and what keeping it costs per month.

    ``usd_per_gb_month`` is per decimal GB (a per-GiB price list converted); ``source`` names the
    catalog row it comes from, so the figure can be checked.
    """

    artifact: str
    site: str
    size_gb: float
    usd_per_gb_month: Decimal
    monthly_usd: Decimal
    source: str


@dataclass(frozen=True)
class Alternative:
    """A runner-up for one step: the best placement at another site, and what moving there would cost."""

    step: str
    site: str
    offering: str
    pricing: Pricing
    total_cost_usd: Decimal
    delta_usd: Decimal
    makespan_hours: float


@dataclass(frozen=True)
class Rejection:
    """A site a step may not use, and every reason why."""

    step: str
    site: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """A complete placement of a pipeline on a platform, with its cost and the reasons behind it."""

    pipeline: str
    objective: Objective
    placements: tuple[Placement, ...]
    transfers: tuple[Transfer, ...]
    compute_cost_usd: Decimal
    egress_cost_usd: Decimal
    makespan_hours: float
    solver: str
    candidates: int
    optimality_gap: float | None = 0.0  # 0: proven optimal; > 0: proven bound on the excess; None: unknown
    rejections: tuple[Rejection, ...] = ()
    # Sites a step may still use, where a policy denied some of its choices (offering, pricing).
    policy_denials: tuple[Rejection, ...] = ()
    alternatives: tuple[Alternative, ...] = field(default=(), compare=False)
    # The copies the run leaves behind and their monthly storage cost (not part of the run's total).
    storage: tuple[StoredCopy, ...] = ()
    # The size each step output was priced at: declared, or the last measured one when far off.
    sizes: tuple[SizeEstimate, ...] = ()
    # With explain: sites dropped before solving as exactly dominated (site, why); the optimum is unchanged.
    pruned_sites: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def total_cost_usd(self) -> Decimal:
        """Compute plus egress: what executing the plan costs (storage is per month, see below)."""
        return self.compute_cost_usd + self.egress_cost_usd

    @property
    def storage_usd_per_month(self) -> Decimal:
        """What keeping every copy the run leaves costs per month."""
        return sum((c.monthly_usd for c in self.storage), Decimal(0))

    def placement(self, step: str) -> Placement:
        """The placement of ``step``; KeyError when the plan has no such step."""
        for placement in self.placements:
            if placement.step == step:
                return placement
        raise KeyError(step)

    def to_json(self) -> dict[str, Any]:
        """The documented ``stratus plan --json`` object (money as float USD rounded to micro-dollars)."""
        return {
            "objective": self.objective,
            "total_cost_usd": _usd(self.total_cost_usd),
            "compute_cost_usd": _usd(self.compute_cost_usd),
            "egress_cost_usd": _usd(self.egress_cost_usd),
            "storage_usd_per_month": _usd(self.storage_usd_per_month),
            "makespan_hours": round(self.makespan_hours, 6),
            "solver": self.solver,
            "optimality_gap": self.optimality_gap,
            "steps": [
                {
                    "step": p.step,
                    "site": p.site,
                    "offering": p.offering,
                    "pricing": p.pricing,
                    "hours": p.hours,
                    "cost_usd": _usd(p.cost_usd),
                    "participants": [
                        {"site": q.site, "offering": q.offering, "pricing": q.pricing} for q in p.participants
                    ],
                }
                for p in self.placements
            ],
            "transfers": [
                {
                    "artifact": t.artifact,
                    "from_site": t.from_site,
                    "to_site": t.to_site,
                    "size_gb": t.size_gb,
                    "cost_usd": _usd(t.cost_usd),
                }
                for t in self.transfers
            ],
            "storage": [
                {
                    "artifact": c.artifact,
                    "site": c.site,
                    "size_gb": c.size_gb,
                    "usd_per_gb_month": _usd(c.usd_per_gb_month),
                    "usd_per_month": _usd(c.monthly_usd),
                    "source": c.source,
                }
                for c in self.storage
            ],
            "sizes": [s.to_json() for s in self.sizes],
        }
