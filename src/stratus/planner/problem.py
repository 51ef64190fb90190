"""The planning problem in index form: sites, steps, candidates, artifact flows and prices.

Everything the solvers need is computed here once, so the tree DP, the MILP and the brute-force checker
in the tests all read the same numbers and cannot disagree about the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stratus.catalog import Catalog
from stratus.config import Pipeline, Platform, parse_input, step_dependencies, topological_order
from stratus.errors import InfeasibleError
from stratus.planner.candidates import Candidate, CandidatePolicy, site_offerings, step_candidates
from stratus.planner.egress import EgressMatrix, egress_matrix
from stratus.planner.multisite import multi_site_candidates
from stratus.planner.plan import Objective
from stratus.planner.residency import artifact_residency, step_residency

__all__ = ["Flow", "Problem", "build_problem"]

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Flow:
    """One artifact's journey: where it starts, who reads it, where it must be replicated."""

    name: str
    producer: int | None  # step index, or None for a dataset
    origin: int | None  # site index for a dataset; None when the producer's site decides
    size_gb: float
    consumers: tuple[int, ...]  # distinct step indices, in pipeline order
    replicas: tuple[int, ...]  # site indices that must hold it besides its origin


@dataclass(frozen=True)
class Problem:
    """A pipeline on a platform, reduced to the numbers the solvers optimise over."""

    pipeline: str
    objective: Objective
    sites: tuple[str, ...]
    site_labels: tuple[tuple[str, str], ...]  # (provider, continent): a natural first guess at egress classes
    steps: tuple[str, ...]  # topological order
    hours: tuple[float, ...]
    candidates: tuple[
        dict[int, Sequence[Candidate]], ...
    ]  # per step: site index → candidates, cheapest first
    rejections: dict[str, dict[str, list[str]]]
    flows: tuple[Flow, ...]
    egress: EgressMatrix
    transfer_gbps: float
    # step → site → policy messages, for sites that stay feasible with only some of their choices denied
    denials: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def n_candidates(self) -> int:
        """Every (step, site, offering, pricing) choice the solver considered."""
        return sum(len(c) for per_step in self.candidates for c in per_step.values())

    def feasible_sites(self, step: int) -> list[int]:
        """Site indices where ``step`` has at least one candidate, in platform order."""
        return sorted(self.candidates[step])

    def compute_cost(self, step: int) -> dict[int, float]:
        """Cheapest compute cost of ``step`` at each feasible site, as floats for the solvers."""
        return {s: float(c[0].cost_usd) for s, c in self.candidates[step].items()}

    def transfer_hours(self, size_gb: float) -> float:
        """Hours to move ``size_gb`` between sites at the platform's stated bandwidth."""
        return size_gb * 8.0 / self.transfer_gbps / SECONDS_PER_HOUR

    def holder_rates(self, flow: Flow) -> npt.NDArray[np.float64]:
        """usd/GB to bring ``flow`` to each site from its cheapest replica (0 at one), ignoring its origin."""
        rates = np.full(len(self.sites), np.inf)
        for r in flow.replicas:
            rates = np.minimum(rates, self.egress.usd_per_gb[r])
        rates[list(flow.replicas)] = 0.0
        return rates

    def pair_rates(self, flow: Flow) -> npt.NDArray[np.float64]:
        """usd/GB to bring ``flow`` to site d when it originates at site o: ``[o, d]``, 0 where d holds it."""
        rates = np.minimum(self.egress.usd_per_gb, self.holder_rates(flow)[None, :])
        np.fill_diagonal(rates, 0.0)
        return rates


def build_problem(
    pipeline: Pipeline,
    platform: Platform,
    catalog: Catalog,
    objective: Objective,
    policy: CandidatePolicy | None = None,
) -> Problem:
    """Index the pipeline and platform, filter candidates, and fail early with reasons when nothing fits.

    ``policy`` (from the layer above, e.g. ``stratus.policy``) may deny any (step, site, offering,
    pricing); its messages join the built-in reasons a site was rejected for.
    """
    sites = tuple(platform.sites)
    site_index = {name: i for i, name in enumerate(sites)}
    deps = step_dependencies({name: step.inputs for name, step in pipeline.steps.items()})
    steps = tuple(topological_order(deps))
    step_index = {name: i for i, name in enumerate(steps)}
    residency = artifact_residency(pipeline)
    offerings = site_offerings(platform, catalog)
    egress = egress_matrix(platform, catalog.egress, sites)

    candidates: list[dict[int, Sequence[Candidate]]] = []
    rejections: dict[str, dict[str, list[str]]] = {}
    denials: dict[str, dict[str, list[str]]] = {}
    for name in steps:
        step = pipeline.steps[name]
        # A federated step's data never leaves its sites, so its residency binds no machine of the step.
        bound = frozenset() if step.kind == "federated" else step_residency(step.inputs, residency)
        feasible, rejected, partly = step_candidates(step, bound, platform, offerings, policy, name)
        if partly:
            denials[name] = partly
        if step.kind != "single":
            feasible, rejected = multi_site_candidates(step, pipeline, feasible, rejected, egress)
        candidates.append({site_index[s]: c for s, c in feasible.items()})
        if rejected:
            rejections[name] = rejected
    _check_residency_of_copies(pipeline, platform, residency)
    infeasible = [name for i, name in enumerate(steps) if not candidates[i]]
    if infeasible:
        raise InfeasibleError(_infeasible_message(infeasible, rejections), rejections)

    flows = _flows(pipeline, steps, step_index, site_index)
    return Problem(
        pipeline=pipeline.name,
        objective=objective,
        sites=sites,
        site_labels=tuple((s.provider, s.continent or "") for s in platform.sites.values()),
        steps=steps,
        hours=tuple(pipeline.steps[name].estimated_hours for name in steps),
        candidates=tuple(candidates),
        rejections=rejections,
        flows=flows,
        egress=egress,
        transfer_gbps=platform.transfer_gbps,
        denials=denials,
    )


def _flows(
    pipeline: Pipeline, steps: tuple[str, ...], step_index: dict[str, int], site_index: dict[str, int]
) -> tuple[Flow, ...]:
    readers: dict[str, list[int]] = {}
    for name in steps:
        if pipeline.steps[name].kind == "federated":
            continue  # each participant reads its own site's datasets: no copy to plan
        for ref in pipeline.steps[name].inputs:
            producer, item = parse_input(ref)
            key = f"dataset:{item}" if producer is None else ref
            bucket = readers.setdefault(key, [])
            if step_index[name] not in bucket:
                bucket.append(step_index[name])
    flows: list[Flow] = []
    for ds_name, dataset in pipeline.datasets.items():
        key = f"dataset:{ds_name}"
        origin = site_index[dataset.site]
        replicas = tuple(dict.fromkeys(site_index[s] for s in dataset.replicas if site_index[s] != origin))
        flows.append(Flow(key, None, origin, dataset.size_gb, tuple(readers.get(key, ())), replicas))
    for name in steps:
        step = pipeline.steps[name]
        replicas = tuple(dict.fromkeys(site_index[s] for s in step.replicate.sites))
        for output, spec in step.outputs.items():
            key = f"{name}.{output}"
            flows.append(
                Flow(key, step_index[name], None, spec.size_gb, tuple(readers.get(key, ())), replicas)
            )
    return tuple(flows)


def _check_residency_of_copies(
    pipeline: Pipeline, platform: Platform, residency: dict[str, frozenset[str]]
) -> None:
    """Resident data may only be stored where its jurisdiction allows, whatever asked for the copy."""
    problems: dict[str, dict[str, list[str]]] = {}

    def check(artifact: str, site: str, why: str) -> None:
        bound = residency.get(artifact, frozenset())
        jurisdiction = platform.sites[site].jurisdiction
        if bound and any(j != jurisdiction for j in bound):
            message = (
                f"{why}: {artifact} must stay in {', '.join(sorted(bound))}; {site} is in {jurisdiction}"
            )
            problems.setdefault(artifact, {}).setdefault(site, []).append(message)

    for name, dataset in pipeline.datasets.items():
        for site in [dataset.site, *dataset.replicas]:
            check(f"dataset:{name}", site, "dataset location")
    for step_name, step in pipeline.steps.items():
        for output in step.outputs:
            for site in step.replicate.sites:
                check(f"{step_name}.{output}", site, f"steps.{step_name}.replicate")
        spec = step.registration
        if spec is not None:  # the registry's artifact store is a place too (registry.jurisdiction)
            artifact = f"{step_name}.{spec.output or next(iter(step.outputs))}"
            bound = residency.get(artifact, frozenset())
            where = platform.registry.jurisdiction if platform.registry else None
            if bound and any(j != where for j in bound):
                shown = f"is in {where}" if where else "has no declared jurisdiction (registry.jurisdiction)"
                problems.setdefault(artifact, {}).setdefault("registry", []).append(
                    f"steps.{step_name}.register: {artifact} must stay in {', '.join(sorted(bound))}; "
                    f"the registry's store {shown}"
                )
            for site in platform.registry.artifacts if platform.registry else ():
                check(artifact, site, "registry.artifacts")  # the model's bytes are kept there too
    if problems:
        lines = [m for per_site in problems.values() for ms in per_site.values() for m in ms]
        raise InfeasibleError(
            "residency forbids storing data where the pipeline asks:\n  "
            + "\n  ".join(lines)
            + "\nRemove those sites from replicate/replicas (or set the registry's jurisdiction), or "
            "mark the producing step `declassify: true` if it emits only aggregates.",
            problems,
        )


def _infeasible_message(infeasible: list[str], rejections: dict[str, dict[str, list[str]]]) -> str:
    lines = ["no site can run " + ", ".join(infeasible) + ":"]
    hints: set[str] = set()
    for name in infeasible:
        lines.append(f"  {name}:")
        for site, reasons in rejections.get(name, {}).items():
            lines.append(f"    {site}: " + "; ".join(reasons))
            hints.update(r.split(":", 1)[0] for r in reasons)
    relax = {
        "sites": "widen constraints.sites",
        "provider": "allow more constraints.providers",
        "backend": "allow more constraints.backends, or add a site with that backend",
        "serverless": "ask for less memory or time, or allow a site that is not serverless",
        "region": "allow more constraints.regions",
        "jurisdiction": "allow more constraints.jurisdiction",
        "residency": "add a site in the data's jurisdiction, or declassify an upstream step",
        "resources": "request fewer resources or add an offering that fits",
        "capacity": "raise compute.capacity at a site",
        "catalog": "use a region the catalog covers, or list offerings inline",
        "policy": "ask the policy's owners, or change what it denies (`stratus policy eval` shows why)",
    }
    lines.append("To relax: " + "; ".join(relax[h] for h in sorted(hints) if h in relax) + ".")
    return "\n".join(lines)
