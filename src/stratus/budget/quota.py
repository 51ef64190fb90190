"""Quotas: the most vCPUs and GPUs one team's running steps hold at once at a site.

The runner's scheduler asks :class:`QuotaUsage` before it starts a step and gives the step's share back
when it ends, so a step waits for capacity rather than exceeding it. A step that alone needs more than
its team's quota at its site could never start: :func:`check_quotas` refuses such a plan up front.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from stratus.config import Pipeline, Platform, Step
from stratus.config.budgets import SiteQuota
from stratus.errors import PlanError
from stratus.planner import Placement, Plan

__all__ = ["Demand", "QuotaUsage", "check_quotas", "placement_sites", "team_quotas"]


@dataclass(frozen=True)
class Demand:
    """What one running step holds at each of its sites."""

    vcpus: float
    gpus: int

    @classmethod
    def of(cls, step: Step) -> Demand:
        """A step's ``resources``: its cpus and its accelerator count (0 without accelerators)."""
        accelerators = step.resources.accelerators
        return cls(step.resources.cpus, accelerators.count if accelerators else 0)


def placement_sites(placement: Placement) -> tuple[str, ...]:
    """Every site a placement holds a machine at: its own and each participant's (ranks, clients)."""
    return tuple(dict.fromkeys([placement.site, *(p.site for p in placement.participants)]))


def team_quotas(platform: Platform, pipeline: Pipeline) -> Mapping[str, SiteQuota]:
    """site → quota for the pipeline's team (``tags.team``); empty when it has no team or no quota."""
    team = pipeline.tags.get("team")
    return platform.quotas.get(team, {}) if team else {}


class QuotaUsage:
    """What one team's running steps hold per site, against its quotas; used by one thread only."""

    def __init__(self, team: str | None, quotas: Mapping[str, SiteQuota]) -> None:
        self.team = team
        self.quotas = dict(quotas)
        self.vcpus: dict[str, float] = {}
        self.gpus: dict[str, int] = {}
        self.held: dict[str, tuple[tuple[str, ...], Demand]] = {}

    def too_big(self, step: str, sites: Iterable[str], demand: Demand) -> str | None:
        """Why ``step`` could never start under the quota (it alone exceeds it somewhere), or None."""
        for site in sites:
            quota = self.quotas.get(site)
            if quota is None:
                continue
            if quota.vcpus is not None and demand.vcpus > quota.vcpus:
                return self._too_big(step, site, f"{demand.vcpus:g} vCPUs", f"vcpus: {quota.vcpus:g}")
            if quota.gpus is not None and demand.gpus > quota.gpus:
                return self._too_big(step, site, f"{demand.gpus} GPU(s)", f"gpus: {quota.gpus}")
        return None

    def _too_big(self, step: str, site: str, need: str, quota: str) -> str:
        return (
            f"step {step!r} needs {need} at site {site}, more than team {self.team}'s quota there "
            f"({quota}), so it could never start; raise quotas.{self.team}.{site} in the platform file "
            f"or keep the step off {site} (constraints.sites)"
        )

    def fits(self, sites: Iterable[str], demand: Demand) -> bool:
        """Whether starting a step with ``demand`` now keeps every one of ``sites`` within the quota."""
        for site in sites:
            quota = self.quotas.get(site)
            if quota is None:
                continue
            if quota.vcpus is not None and self.vcpus.get(site, 0.0) + demand.vcpus > quota.vcpus + 1e-9:
                return False
            if quota.gpus is not None and self.gpus.get(site, 0) + demand.gpus > quota.gpus:
                return False
        return True

    def take(self, step: str, sites: Iterable[str], demand: Demand) -> None:
        """Count ``step`` as running at ``sites`` until :meth:`release`."""
        held = tuple(sites)
        self.held[step] = (held, demand)
        for site in held:
            self.vcpus[site] = self.vcpus.get(site, 0.0) + demand.vcpus
            self.gpus[site] = self.gpus.get(site, 0) + demand.gpus

    def release(self, step: str) -> None:
        """Give back what ``step`` held; a step not held is ignored."""
        held = self.held.pop(step, None)
        if held is None:
            return
        sites, demand = held
        for site in sites:
            self.vcpus[site] -= demand.vcpus
            self.gpus[site] -= demand.gpus


def check_quotas(plan: Plan, pipeline: Pipeline, platform: Platform) -> None:
    """PlanError (exit 3) naming every placed step that alone exceeds its team's quota at its site."""
    quotas = team_quotas(platform, pipeline)
    if not quotas:
        return
    usage = QuotaUsage(pipeline.tags.get("team"), quotas)
    problems = [
        problem
        for p in plan.placements
        if p.step in pipeline.steps
        and (problem := usage.too_big(p.step, placement_sites(p), Demand.of(pipeline.steps[p.step])))
    ]
    if problems:
        raise PlanError("the plan does not fit the team's quotas: " + "; ".join(problems))
