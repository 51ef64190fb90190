"""The cost model, written once and plainly: what a given site assignment costs and how long it takes.

Solvers search; this module judges. The Plan's figures come from here, and the tests check every solver
against brute force through this same function, so a modelling slip in a solver cannot hide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from stratus.planner.plan import Participant, Placement, Transfer
from stratus.planner.problem import Flow, Problem

__all__ = ["Evaluation", "evaluate"]


@dataclass(frozen=True)
class Evaluation:
    """Cost and timing of one assignment of steps to sites."""

    placements: tuple[Placement, ...]
    transfers: tuple[Transfer, ...]
    compute_cost_usd: Decimal
    egress_cost_usd: Decimal
    makespan_hours: float

    @property
    def total_cost_usd(self) -> Decimal:
        """Compute plus egress."""
        return self.compute_cost_usd + self.egress_cost_usd


def evaluate(problem: Problem, assignment: Sequence[int]) -> Evaluation:
    """Price ``assignment`` (site index per step, in ``problem.steps`` order) under the planner's model.

    Each artifact is copied at most once to every site that needs it (a reader runs there, or it is a
    replica), from the cheapest site already holding it; replicas are written by the producer.
    """
    transfers: list[Transfer] = []
    origin_of: dict[str, int] = {}
    for flow in problem.flows:
        origin = flow.origin if flow.producer is None else assignment[flow.producer]
        assert origin is not None
        origin_of[flow.name] = origin
        transfers.extend(_flow_transfers(problem, flow, origin, assignment))

    start: list[float] = [0.0] * len(problem.steps)
    finish: list[float] = [0.0] * len(problem.steps)
    incoming = _incoming(problem)
    for i in range(len(problem.steps)):
        site = assignment[i]
        ready = 0.0
        for flow in incoming[i]:
            produced = 0.0 if flow.producer is None else finish[flow.producer]
            held = site == origin_of[flow.name] or site in flow.replicas
            ready = max(ready, produced + (0.0 if held else problem.transfer_hours(flow.size_gb)))
        start[i] = ready
        finish[i] = ready + duration(problem, i, site)

    placements = []
    for i, name in enumerate(problem.steps):
        best = problem.candidates[i][assignment[i]][0]
        placements.append(
            Placement(
                step=name,
                site=problem.sites[assignment[i]],
                provider=best.offering.provider,
                region=best.offering.region,
                offering=best.offering.name,
                pricing=best.pricing,
                price_per_hour_usd=best.price_per_hour_usd,
                hours=problem.hours[i],
                cost_usd=best.cost_usd,
                start_hours=start[i],
                finish_hours=finish[i],
                participants=tuple(
                    Participant(
                        site=c.site,
                        provider=c.offering.provider,
                        region=c.offering.region,
                        offering=c.offering.name,
                        pricing=c.pricing,
                        price_per_hour_usd=c.price_per_hour_usd,
                        cost_usd=c.cost_usd,
                    )
                    for c in best.participants
                ),
            )
        )
    return Evaluation(
        placements=tuple(placements),
        transfers=tuple(transfers),
        compute_cost_usd=sum((p.cost_usd for p in placements), Decimal(0)),
        egress_cost_usd=sum((t.cost_usd for t in transfers), Decimal(0)),
        makespan_hours=max(finish, default=0.0),
    )


def duration(problem: Problem, step: int, site: int) -> float:
    """Hours from a step's start until its outputs are acknowledged on every replica (dual-write)."""
    replica_wait = max(
        (
            problem.transfer_hours(f.size_gb)
            for f in problem.flows
            if f.producer == step and any(r != site for r in f.replicas)
        ),
        default=0.0,
    )
    return problem.hours[step] + replica_wait


def _incoming(problem: Problem) -> list[list[Flow]]:
    incoming: list[list[Flow]] = [[] for _ in problem.steps]
    for flow in problem.flows:
        for consumer in flow.consumers:
            incoming[consumer].append(flow)
    return incoming


def _flow_transfers(problem: Problem, flow: Flow, origin: int, assignment: Sequence[int]) -> list[Transfer]:
    size = Decimal(str(flow.size_gb))
    exact = problem.egress.exact
    transfers: list[Transfer] = []
    holders = [origin]
    if flow.producer is not None:
        for replica in flow.replicas:
            if replica != origin:
                rate = exact[origin][replica]
                transfers.append(
                    _transfer(problem, flow, origin, replica, rate, size, "replica (dual-write)")
                )
    holders.extend(r for r in flow.replicas if r != origin)
    needed: list[int] = []
    for consumer in flow.consumers:
        site = assignment[consumer]
        if site not in holders and site not in needed:
            needed.append(site)
    for site in needed:
        source = min(holders, key=lambda h: exact[h][site])
        readers = ", ".join(problem.steps[c] for c in flow.consumers if assignment[c] == site)
        transfers.append(
            _transfer(problem, flow, source, site, exact[source][site], size, f"input of {readers}")
        )
    return transfers


def _transfer(
    problem: Problem, flow: Flow, src: int, dst: int, rate: Decimal, size: Decimal, reason: str
) -> Transfer:
    return Transfer(
        artifact=flow.name,
        from_site=problem.sites[src],
        to_site=problem.sites[dst],
        size_gb=flow.size_gb,
        usd_per_gb=rate,
        cost_usd=rate * size,
        reason=reason,
    )
