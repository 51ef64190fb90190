"""What multi-cloud saves: the same pipeline re-planned under narrower rules, priced by the same model.

Every row is a constrained re-solve of the exact planner (a site filter passed in as a candidate policy,
so ``build_problem``, the solvers and ``evaluate`` are the very ones ``plan`` uses):

- **single provider**: every step on one provider's sites (residency, constraints and the user's policy
  still hold; datasets and declared replicas stay where the pipeline puts them), or why it cannot be;
- **single region**: the best plan that keeps every step in one (provider, region);
- **SkyPilot's model**: the plan a cheapest-instance-per-cloud planner with flat inter-cloud egress
  would choose (one instance type per cloud and step, egress free inside a cloud and the source's
  internet rate between clouds), re-priced with our model;
- each again with spot disabled, so the saving splits honestly into what spot buys and what placing
  steps across providers buys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from stratus.catalog import OWNED_PROVIDERS, Catalog
from stratus.config import Pipeline, Platform
from stratus.errors import InfeasibleError
from stratus.planner.candidates import CandidatePolicy, Option
from stratus.planner.egress import EgressMatrix
from stratus.planner.evaluate import evaluate
from stratus.planner.plan import Objective
from stratus.planner.problem import Problem, build_problem
from stratus.planner.solve import DEFAULT_TIME_LIMIT_S, solve

__all__ = ["Comparison", "Priced", "Saving", "compare"]

RowKind = Literal["stratus", "provider", "region", "skypilot"]
#: Distinct reasons shown per infeasible row.
MAX_REASONS = 3


@dataclass(frozen=True)
class Priced:
    """One way to plan the pipeline, priced with spot allowed (as the pipeline says) and with spot off.

    ``total_cost_usd`` is None when the rule leaves some step nowhere to run; ``infeasible`` says why.
    """

    kind: RowKind
    label: str
    total_cost_usd: Decimal | None
    makespan_hours: float | None
    optimality_gap: float | None
    on_demand_cost_usd: Decimal | None
    on_demand_makespan_hours: float | None
    sites: tuple[str, ...] = ()  # distinct sites the spot-allowed plan uses, in step order
    infeasible: str | None = None


@dataclass(frozen=True)
class Saving:
    """Stratus against the best single-provider plan on on-demand prices, split into its two sources.

    ``spot`` is what spot saves inside that one provider (best single-provider on-demand minus best
    single-provider with spot); ``placement`` is what spreading the steps over providers saves on top
    (best single-provider with spot minus Stratus). ``placement_on_demand``: the same with spot off for
    both, i.e. what placement alone would save.
    """

    baseline: str
    baseline_usd: Decimal
    total_usd: Decimal
    spot_usd: Decimal
    placement_usd: Decimal
    placement_on_demand_usd: Decimal


@dataclass(frozen=True)
class Comparison:
    """Stratus's plan beside the single-provider, single-region and SkyPilot-model plans."""

    pipeline: str
    objective: Objective
    stratus: Priced
    rows: tuple[Priced, ...]
    saving: Saving | None  # None when no single-provider plan is feasible

    def saved(self, row: Priced) -> tuple[Decimal, float] | None:
        """Dollars and fraction Stratus saves against ``row`` (negative: the row is cheaper), or None."""
        if row.total_cost_usd is None or self.stratus.total_cost_usd is None:
            return None
        delta = row.total_cost_usd - self.stratus.total_cost_usd
        return delta, float(delta / row.total_cost_usd) if row.total_cost_usd > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The ``compare`` member of ``stratus plan --compare --json`` (money in USD, micro-dollars)."""
        return {
            "objective": self.objective,
            "stratus": self._row_json(self.stratus),
            "rows": [self._row_json(row) for row in self.rows],
            "saving": None
            if self.saving is None
            else {
                "baseline": self.saving.baseline,
                "baseline_usd": _usd(self.saving.baseline_usd),
                "total_usd": _usd(self.saving.total_usd),
                "spot_usd": _usd(self.saving.spot_usd),
                "placement_usd": _usd(self.saving.placement_usd),
                "placement_on_demand_usd": _usd(self.saving.placement_on_demand_usd),
            },
        }

    def _row_json(self, row: Priced) -> dict[str, Any]:
        saved = self.saved(row)
        return {
            "kind": row.kind,
            "label": row.label,
            "feasible": row.infeasible is None,
            "infeasible": row.infeasible,
            "total_cost_usd": _usd(row.total_cost_usd),
            "makespan_hours": None if row.makespan_hours is None else round(row.makespan_hours, 6),
            "optimality_gap": row.optimality_gap,
            "on_demand_cost_usd": _usd(row.on_demand_cost_usd),
            "on_demand_makespan_hours": None
            if row.on_demand_makespan_hours is None
            else round(row.on_demand_makespan_hours, 6),
            "sites": list(row.sites),
            "stratus_saves_usd": None if saved is None else _usd(saved[0]),
            "stratus_saves_fraction": None if saved is None else round(saved[1], 6),
        }


def _usd(value: Decimal | None) -> float | None:
    return None if value is None else float(round(value, 6))


@dataclass(frozen=True)
class _Solved:
    cost: Decimal
    makespan: float
    gap: float | None
    sites: tuple[str, ...]


def compare(
    pipeline: Pipeline,
    platform: Platform,
    catalog: Catalog | None = None,
    objective: Objective = "cost",
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    policy: CandidatePolicy | None = None,
) -> Comparison:
    """Price Stratus's plan and the narrower plans beside it; pure, like ``plan``.

    Raises InfeasibleError only when Stratus itself has no plan; a narrower rule that leaves a step
    nowhere to run becomes a row with ``infeasible`` set.
    """
    catalog = catalog or Catalog.bundled()
    no_spot = _without_spot(pipeline)

    def both(kind: RowKind, label: str, allow: Callable[[str], bool] | None, why: str) -> Priced:
        with_spot = _solve_within(pipeline, platform, catalog, objective, time_limit_s, policy, allow, why)
        on_demand = _solve_within(no_spot, platform, catalog, objective, time_limit_s, policy, allow, why)
        return _row(kind, label, with_spot, on_demand)

    stratus = both("stratus", "Stratus (every site)", None, "")
    if stratus.infeasible is not None:
        raise InfeasibleError(stratus.infeasible, {})
    rows: list[Priced] = []
    providers = list(dict.fromkeys(site.provider for site in platform.sites.values()))
    for provider in providers:
        members = frozenset(n for n, s in platform.sites.items() if s.provider == provider)
        rows.append(both("provider", f"{provider} only", members.__contains__, f"not a {provider} site"))
    rows.append(_best_region(platform, objective, both))
    sky = _skypilot(pipeline, platform, catalog, objective, time_limit_s, policy)
    sky_od = _skypilot(no_spot, platform, catalog, objective, time_limit_s, policy)
    rows.append(_row("skypilot", "SkyPilot's model, re-priced", sky, sky_od))
    return Comparison(
        pipeline=pipeline.name,
        objective=objective,
        stratus=stratus,
        rows=tuple(rows),
        saving=_saving(stratus, [r for r in rows if r.kind == "provider"]),
    )


def _without_spot(pipeline: Pipeline) -> Pipeline:
    steps = {name: step.model_copy(update={"spot": False}) for name, step in pipeline.steps.items()}
    return pipeline.model_copy(update={"steps": steps})


def _row(kind: RowKind, label: str, spot: _Solved | str, on_demand: _Solved | str) -> Priced:
    if isinstance(spot, str):
        return Priced(kind, label, None, None, None, None, None, infeasible=spot)
    return Priced(
        kind,
        label,
        spot.cost,
        spot.makespan,
        spot.gap,
        None if isinstance(on_demand, str) else on_demand.cost,
        None if isinstance(on_demand, str) else on_demand.makespan,
        spot.sites,
    )


def _rank(objective: Objective, row: Priced) -> tuple[float, float]:
    assert row.total_cost_usd is not None
    assert row.makespan_hours is not None
    cost, time = float(row.total_cost_usd), row.makespan_hours
    return (time, cost) if objective == "time" else (cost, time)


def _best_region(
    platform: Platform,
    objective: Objective,
    both: Callable[[RowKind, str, Callable[[str], bool], str], Priced],
) -> Priced:
    """The best plan keeping every step in one (provider, region); regions tried in platform order."""
    regions: dict[tuple[str, str], set[str]] = {}
    for name, site in platform.sites.items():
        regions.setdefault((site.provider, site.region), set()).add(name)
    tried: list[Priced] = []
    for (provider, region), members in regions.items():
        label = f"one region: {provider}/{region}"
        tried.append(both("region", label, frozenset(members).__contains__, f"not in {provider}/{region}"))
    feasible = [r for r in tried if r.total_cost_usd is not None]
    if not feasible:
        first = tried[0]
        why = (
            f"none of the {len(tried)} regions can run every step; "
            f"{first.label.removeprefix('one region: ')}: {first.infeasible}"
        )
        return Priced("region", "one region", None, None, None, None, None, infeasible=why)
    best = min(feasible, key=lambda r: _rank(objective, r))
    best_od = [r.on_demand_cost_usd for r in feasible if r.on_demand_cost_usd is not None]
    return replace(
        best,
        label=f"{best.label} (best of {len(feasible)} feasible of {len(tried)} regions)",
        on_demand_cost_usd=min(best_od, default=None),
    )


def _saving(stratus: Priced, providers: Sequence[Priced]) -> Saving | None:
    spot = [p for p in providers if p.total_cost_usd is not None]
    od = [p for p in providers if p.on_demand_cost_usd is not None]
    if not spot or not od or stratus.total_cost_usd is None or stratus.on_demand_cost_usd is None:
        return None
    best_spot = min(p.total_cost_usd for p in spot if p.total_cost_usd is not None)
    baseline = min(od, key=lambda p: p.on_demand_cost_usd or Decimal(0))
    assert baseline.on_demand_cost_usd is not None
    return Saving(
        baseline=baseline.label,
        baseline_usd=baseline.on_demand_cost_usd,
        total_usd=baseline.on_demand_cost_usd - stratus.total_cost_usd,
        spot_usd=baseline.on_demand_cost_usd - best_spot,
        placement_usd=best_spot - stratus.total_cost_usd,
        placement_on_demand_usd=baseline.on_demand_cost_usd - stratus.on_demand_cost_usd,
    )


def _solve_within(
    pipeline: Pipeline,
    platform: Platform,
    catalog: Catalog,
    objective: Objective,
    time_limit_s: float,
    policy: CandidatePolicy | None,
    allow: Callable[[str], bool] | None,
    why: str,
) -> _Solved | str:
    """The exact plan when steps may only run where ``allow`` says; else why some step cannot run."""
    rule = policy if allow is None else _only(allow, why, policy)
    try:
        problem = build_problem(pipeline, platform, catalog, objective, rule)
    except InfeasibleError as error:
        return _why_infeasible(error, frozenset(platform.sites), allow, why)
    assignment, _solver, gap = solve(problem, time_limit_s)
    result = evaluate(problem, assignment)
    used = tuple(dict.fromkeys(problem.sites[s] for s in assignment))
    return _Solved(result.total_cost_usd, result.makespan_hours, gap, used)


def _only(allow: Callable[[str], bool], why: str, inner: CandidatePolicy | None) -> CandidatePolicy:
    """A candidate policy denying every choice at a site ``allow`` refuses, then asking ``inner``."""

    def judge(
        step: str, site: str, residency: frozenset[str], options: Sequence[Option]
    ) -> list[tuple[str, ...]]:
        if not allow(site):
            return [(why,)] * len(options)
        return inner(step, site, residency, options) if inner is not None else [()] * len(options)

    return judge


def _why_infeasible(
    error: InfeasibleError, sites: frozenset[str], allow: Callable[[str], bool] | None, why: str
) -> str:
    """The distinct reasons, each with the steps it leaves nowhere to run, at the sites the rule kept
    (the rule's own denial is left out: the row's label says it already)."""
    steps_by_reason: dict[str, list[str]] = {}
    for step, per_site in error.reasons.items():
        if not sites <= per_site.keys():
            continue  # some site could run it: not why the plan is infeasible
        for reasons in (r for s, r in per_site.items() if allow is None or allow(s)):
            for reason in reasons:
                if why and why in reason:
                    continue
                bucket = steps_by_reason.setdefault(reason, [])
                if step not in bucket:
                    bucket.append(step)
    if not steps_by_reason:
        return str(error).splitlines()[0]
    shown = [f"{', '.join(steps)}: {reason}" for reason, steps in list(steps_by_reason.items())[:MAX_REASONS]]
    more = len(steps_by_reason) - MAX_REASONS
    return " | ".join(shown) + (f" | +{more} more reason(s)" if more > 0 else "")


def _skypilot(
    pipeline: Pipeline,
    platform: Platform,
    catalog: Catalog,
    objective: Objective,
    time_limit_s: float,
    policy: CandidatePolicy | None,
) -> _Solved | str:
    """The plan SkyPilot's model would choose, priced by ours.

    Its model, as the bench's live anchor (bench/planner) shows it: one instance type per cloud and
    step (the cheapest that fits, wherever it is cheapest), egress free inside a cloud and the source's
    internet rate between clouds. Sites the team owns keep their own offerings.
    """
    try:
        full = build_problem(pipeline, platform, catalog, objective, policy)
    except InfeasibleError as error:
        return _why_infeasible(error, frozenset(platform.sites), None, "")
    chosen = _cheapest_type_per_cloud(full)
    provider_of = {name: site.provider for name, site in platform.sites.items()}

    def one_type(
        step: str, site: str, residency: frozenset[str], options: Sequence[Option]
    ) -> list[tuple[str, ...]]:
        wanted = chosen.get((step, provider_of[site]))
        verdicts: list[tuple[str, ...]] = [
            ()
            if wanted is None or offering.name == wanted
            else ("SkyPilot's model: one instance type per cloud",)
            for offering, _pricing, _price in options
        ]
        if policy is None:
            return verdicts
        theirs = policy(step, site, residency, options)
        return [v + t for v, t in zip(verdicts, theirs, strict=True)]

    try:
        priced = build_problem(pipeline, platform, catalog, objective, one_type)
    except InfeasibleError as error:
        return _why_infeasible(error, frozenset(platform.sites), None, "")
    flat = replace(priced, egress=_flat_egress(priced, provider_of))
    assignment, _solver, gap = solve(flat, time_limit_s)
    result = evaluate(priced, assignment)
    used = tuple(dict.fromkeys(priced.sites[s] for s in assignment))
    return _Solved(result.total_cost_usd, result.makespan_hours, gap, used)


def _cheapest_type_per_cloud(problem: Problem) -> dict[tuple[str, str], str]:
    """(step, provider) → the offering name whose cheapest price at any of the provider's sites is least."""
    chosen: dict[tuple[str, str], tuple[Decimal, str]] = {}
    for i, step in enumerate(problem.steps):
        for candidates in problem.candidates[i].values():
            best = candidates[0]
            if best.offering.source != "catalog" or best.offering.provider in OWNED_PROVIDERS:
                continue
            key = (step, best.offering.provider)
            if key not in chosen or best.price_per_hour_usd < chosen[key][0]:
                chosen[key] = (best.price_per_hour_usd, best.offering.name)
    return {key: name for key, (_price, name) in chosen.items()}


def _flat_egress(problem: Problem, provider_of: Mapping[str, str]) -> EgressMatrix:
    """Free inside a cloud; between clouds, what the source pays to send to the internet."""
    exact = [
        [
            Decimal(0) if provider_of[src] == provider_of[dst] else problem.egress.exact[o][d]
            for d, dst in enumerate(problem.sites)
        ]
        for o, src in enumerate(problem.sites)
    ]
    rules = [["SkyPilot's model" for _ in problem.sites] for _ in problem.sites]
    return EgressMatrix(problem.sites, exact, rules)
