"""Plans and re-plans: the planner, told which sites failed for which steps and where finished steps ran.

Re-solving needs no special planner entry point: a failed site is removed from that step's
``constraints.sites`` and a finished step is pinned to where it ran, so the planner, unchanged, places
what is left around what is already done, with the same cost model and residency rules as the first plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from stratus.catalog import Catalog, Offering
from stratus.config import Pipeline, Platform, Step
from stratus.errors import InfeasibleError
from stratus.planner import Measurement, Placement, Plan, Problem, build_problem, plan
from stratus.planner.candidates import CandidatePolicy
from stratus.planner.plan import Objective
from stratus.planner.sizes import choose_sizes, with_sizes

__all__ = ["PlacementPrice", "Placer"]


@dataclass(frozen=True)
class PlacementPrice:
    """What a placement pays per hour, its on-demand list price, and its accelerator (for the ledger).

    Not the planner's ``Pricing`` (how a machine is bought: on-demand, spot, reserved).
    """

    price_per_hour_usd: Decimal
    list_price_per_hour_usd: Decimal
    accelerator: str | None


class Placer:
    """The current plan of a run, re-solved as sites fail under steps."""

    def __init__(
        self,
        pipeline: Pipeline,
        platform: Platform,
        catalog: Catalog,
        objective: Objective,
        policy: CandidatePolicy | None = None,
        measured: Mapping[str, Measurement] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.measured = dict(measured or {})  # last measured output sizes: far-off estimates use them
        self.platform = platform
        self.catalog = catalog
        self.objective = objective
        self.policy = policy  # every (re-)plan puts its candidates to the platform's policies
        self.excluded: dict[str, dict[str, str]] = {}  # step → site → why
        self.down: dict[str, str] = {}  # site → why: excluded for every step from now on
        # Built here so an infeasible pipeline fails before a run starts, and kept for the first plan,
        # which asks for exactly this problem unless sites were lost or steps finished meanwhile.
        self._built_for = self._constrained({})
        self.problem: Problem = self._build(self._built_for)

    def exclude(self, step: str, site: str, why: str) -> None:
        """Never place ``step`` at ``site`` again in this run."""
        self.excluded.setdefault(step, {})[site] = why

    def mark_down(self, site: str, why: str) -> None:
        """Never place any step at ``site`` again in this run (steps already finished there stay)."""
        self.down.setdefault(site, why)

    def plan(self, pinned: Mapping[str, str] | None = None) -> Plan:
        """An optimal plan that avoids excluded sites and keeps ``pinned`` steps where they ran.

        Raises InfeasibleError naming the step and every site it lost when nothing is left for it.
        """
        pinned = dict(pinned or {})
        try:
            return self._solve(pinned)
        except InfeasibleError:
            if not pinned:
                raise
        # A step may have finished somewhere its constraints no longer allow (a cache hit from another
        # run): placing the rest matters more than modelling that step's position exactly.
        return self._solve({})

    def _solve(self, pinned: dict[str, str]) -> Plan:
        pipeline = self._constrained(pinned)
        if pipeline != self._built_for:  # one build per (re-)plan; none when nothing changed
            self.problem = self._build(pipeline)
            self._built_for = pipeline
        return plan(
            pipeline,
            self.platform,
            self.catalog,
            objective=self.objective,
            policy=self.policy,
            measured=self.measured,
            problem=self.problem,
        )

    def _build(self, pipeline: Pipeline) -> Problem:
        """The problem :func:`plan` would build: ``pipeline`` at the sizes it prices (measured ones where
        the declared sizes are far off)."""
        sized = with_sizes(pipeline, choose_sizes(pipeline, self.measured))
        return build_problem(sized, self.platform, self.catalog, self.objective, self.policy)

    def _constrained(self, pinned: dict[str, str]) -> Pipeline:
        """The pipeline with each step's ``constraints.sites`` narrowed to what it may still use."""
        steps: dict[str, Step] = {}
        for name, step in self.pipeline.steps.items():
            allowed = list(step.constraints.sites or self.platform.sites)
            if name in pinned and step.kind == "single":
                allowed = [pinned[name]]
            elif name in pinned:
                pass  # its sites are also its ranks': pinning the coordinator would rule them out
            else:
                lost = {s: why for s, why in self._lost(name).items() if s in allowed}
                allowed = [s for s in allowed if s not in lost]
                if not allowed:
                    words = "; ".join(f"{s}: {why}" for s, why in lost.items())
                    raise InfeasibleError(
                        f"no site is left for step {name!r}: {words}",
                        {name: {s: [why] for s, why in lost.items()}},
                    )
            constraints = step.constraints.model_copy(update={"sites": allowed})
            steps[name] = step.model_copy(update={"constraints": constraints})
        return self.pipeline.model_copy(update={"steps": steps})

    def _lost(self, step: str) -> dict[str, str]:
        """The sites ``step`` may no longer use in this run, and why: its own exclusions, then sites down."""
        lost = {site: f"site down: {why}" for site, why in self.down.items()}
        lost.update(self.excluded.get(step, {}))
        return lost

    def pricing(self, placement: Placement) -> PlacementPrice:
        """The paid and list hourly price of a placement, from the candidates the planner chose among."""
        list_price = placement.price_per_hour_usd
        accelerator: str | None = None
        step = self.problem.steps.index(placement.step)
        site = self.problem.sites.index(placement.site)
        for candidate in self.problem.candidates[step].get(site, []):
            if candidate.offering.name == placement.offering and candidate.pricing == placement.pricing:
                list_price = candidate.offering.price_per_hour_usd
                accelerator = str(candidate.offering.accelerator) if candidate.offering.accelerator else None
                break
        return PlacementPrice(placement.price_per_hour_usd, list_price, accelerator)

    def offering(self, step: str, site: str, name: str) -> Offering | None:
        """The offering ``name`` a step's candidates at ``site`` use (None: not among them)."""
        try:
            candidates = self.problem.candidates[self.problem.steps.index(step)]
            at_site = candidates.get(self.problem.sites.index(site), [])
        except ValueError:
            return None
        machines = [c for candidate in at_site for c in (candidate, *candidate.participants)]
        return next((c.offering for c in machines if c.site == site and c.offering.name == name), None)

    def egress_usd_per_gb(self, from_site: str, to_site: str) -> Decimal:
        """The price of moving a GB between two sites under the platform's egress rules."""
        sites = self.problem.sites
        return Decimal(self.problem.egress.exact[sites.index(from_site)][sites.index(to_site)])
