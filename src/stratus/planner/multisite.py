"""Steps that span sites (distributed training, federated learning), priced as one choice of coordinator.

A multi-site step is placed like any other step, at its coordinator (rank 0, or the federated server):
that is the site whose choice interacts with the rest of the plan (its inputs arrive there, its outputs
leave from there). Everything else about it is then fixed by that choice and priced into the candidate:

- **distributed**, ``sites: [a, b]``: the other listed sites are the other ranks (``[a, a]``: two ranks
  at ``a``, which a Ray site runs as one job holding a placement group). ``sites: N``: the N-1
  other ranks are the cheapest compliant sites *given the coordinator* (their compute, the copy of the
  step's inputs from the coordinator, and the exchange traffic both ways). Costs are additive per rank
  and independent of one another, so taking the cheapest N-1 is exact for each coordinator, and the
  solver then picks the coordinator exactly. Inputs are staged at the coordinator and fanned out from
  there (the runner may find a cheaper holder at run time; the plan is then an upper bound).
- **federated**: one participant per dataset site, reading its data where it lies: nothing raw moves,
  so the coordinator is not bound by the data's residency; only model updates (``exchange_gb``) travel.
  A coordinator at a data site shares that participant's machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from stratus.config import Pipeline, Step, parse_input
from stratus.planner.candidates import Candidate
from stratus.planner.egress import EgressMatrix

__all__ = ["data_sites", "input_gb", "multi_site_candidates"]


def data_sites(step: Step, pipeline: Pipeline) -> list[str]:
    """A federated step's participants: the sites of the datasets it reads, in input order."""
    sites: list[str] = []
    for ref in step.inputs:
        _, name = parse_input(ref)
        site = pipeline.datasets[name].site
        if site not in sites:
            sites.append(site)
    return sites


def input_gb(step: Step, pipeline: Pipeline) -> float:
    """Total size of what the step reads, as the pipeline declares it."""
    total = 0.0
    for ref in step.inputs:
        producer, item = parse_input(ref)
        if producer is None:
            total += pipeline.datasets[item].size_gb
        else:
            total += pipeline.steps[producer].outputs[item].size_gb
    return total


def multi_site_candidates(
    step: Step,
    pipeline: Pipeline,
    feasible: Mapping[str, Sequence[Candidate]],
    rejected: Mapping[str, list[str]],
    egress: EgressMatrix,
) -> tuple[dict[str, Sequence[Candidate]], dict[str, list[str]]]:
    """Per coordinator site, its one candidate with every participant priced in; else why not.

    ``feasible``/``rejected`` say where one participant of the step could run (for a federated step,
    computed without the data's residency, since its data never moves).
    """
    index = {site: i for i, site in enumerate(egress.sites)}

    def rate(src: str, dst: str) -> Decimal:
        return egress.exact[index[src]][index[dst]]

    gb_in = Decimal(str(input_gb(step, pipeline)))
    gb_exchange = Decimal(str(step.exchange_gb))

    def exchange(coordinator: str, other: str) -> Decimal:
        return gb_exchange * (rate(other, coordinator) + rate(coordinator, other))

    chosen: dict[str, Sequence[Candidate]] = {}
    why_not: dict[str, list[str]] = {site: list(reasons) for site, reasons in rejected.items()}
    # A function cannot hold a rendezvous or a federation open: multi-site steps need long-lived machines.
    functions = [site for site, options in feasible.items() if options[0].offering.source == "serverless"]
    for site in functions:
        why_not[site] = [f"serverless: a {step.kind} step needs long-lived machines, not functions"]
    feasible = {site: options for site, options in feasible.items() if site not in functions}
    rejected = why_not
    if step.kind == "federated":
        participants = data_sites(step, pipeline)
        blocked = [f"participant {p}: {'; '.join(rejected[p])}" for p in participants if p in rejected]
        for coordinator, options in feasible.items():
            if blocked:
                why_not[coordinator] = blocked
                continue
            others = [feasible[p][0] for p in participants if p != coordinator]
            extra = sum((o.cost_usd + exchange(coordinator, o.site) for o in others), Decimal(0))
            chosen[coordinator] = [_with(options[0], others, extra)]
        return chosen, why_not

    listed = step.sites if isinstance(step.sites, list) else None
    count = len(listed) if listed is not None else (step.sites if isinstance(step.sites, int) else 1)
    for coordinator, options in feasible.items():
        if listed is not None and coordinator not in listed:
            why_not[coordinator] = [f"sites: not among the step's sites {listed}"]
            continue
        pool = (
            [s for s in feasible if s != coordinator] if listed is None else _without_one(listed, coordinator)
        )
        missing = [f"rank at {s}: {'; '.join(rejected.get(s, ['-']))}" for s in pool if s not in feasible]
        if listed is not None and missing:
            why_not[coordinator] = missing
            continue

        def rank_cost(site: str, coordinator: str = coordinator) -> Decimal:
            return feasible[site][0].cost_usd + gb_in * rate(coordinator, site) + exchange(coordinator, site)

        ranked = sorted((s for s in pool if s in feasible), key=lambda s: (rank_cost(s), s))
        if len(ranked) < count - 1:
            why_not[coordinator] = [
                f"sites: asks for {count} sites and only {len(ranked) + 1} can run it with this one as rank 0"
            ]
            continue
        others_sites = ranked[: count - 1] if listed is None else pool
        extra = sum((rank_cost(s) for s in others_sites), Decimal(0))
        chosen[coordinator] = [_with(options[0], [feasible[s][0] for s in others_sites], extra)]
    return chosen, why_not


def _without_one(listed: Sequence[str], coordinator: str) -> list[str]:
    """The other ranks' sites: the list less rank 0's one entry (a site listed twice holds two ranks)."""
    rest = list(listed)
    rest.remove(coordinator)
    return rest


def _with(own: Candidate, others: Sequence[Candidate], extra: Decimal) -> Candidate:
    return own._replace(cost_usd=own.cost_usd + extra, participants=tuple(others))
