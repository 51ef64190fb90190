"""The planner's entry point: build the problem, pick the exact method that fits, return a Plan."""

from __future__ import annotations

from collections.abc import Mapping

from stratus.catalog import Catalog
from stratus.config import Pipeline, Platform
from stratus.planner.candidates import CandidatePolicy
from stratus.planner.evaluate import Evaluation, evaluate
from stratus.planner.milp import method, solve_milp
from stratus.planner.plan import Alternative, Objective, Plan, Rejection
from stratus.planner.problem import Problem, build_problem
from stratus.planner.prune import prune_dominated
from stratus.planner.sizes import Measurement, choose_sizes, with_sizes
from stratus.planner.storage import copies_left
from stratus.planner.terms import split_terms
from stratus.planner.tree import solve_tree, tree_shaped
from stratus.planner.warm import forest_start

__all__ = ["plan", "solve", "solve_pruned"]

RUNNERS_UP_PER_STEP = 3
# Past this, a DAG's MILP returns its best placement with the proven gap rather than keep a user waiting.
DEFAULT_TIME_LIMIT_S = 60.0


def plan(
    pipeline: Pipeline,
    platform: Platform,
    catalog: Catalog | None = None,
    objective: Objective = "cost",
    explain: bool = False,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    policy: CandidatePolicy | None = None,
    measured: Mapping[str, Measurement] | None = None,
    problem: Problem | None = None,
) -> Plan:
    """Place every step on a site and offering, optimally for ``objective``; pure, no I/O beyond the catalog.

    ``policy`` may deny candidates (see :func:`build_problem`). ``measured`` (``"step.output"`` → the
    last measured size) replaces declared sizes that are far off (:mod:`stratus.planner.sizes`); the
    plan's ``sizes`` say which was used. ``problem``: the one :func:`build_problem` built from these
    same arguments, ``pipeline`` at the sizes :func:`choose_sizes` picks, for a caller that also reads
    its candidates (the runner's placer) and so need not have it built twice. Raises InfeasibleError
    (with per-step, per-site reasons) when no placement satisfies the constraints.
    """
    catalog = catalog or Catalog.bundled()
    sizes = choose_sizes(pipeline, measured or {})
    pipeline = with_sizes(pipeline, sizes)
    if problem is None:
        problem = build_problem(pipeline, platform, catalog, objective, policy)
    elif (problem.pipeline, problem.objective) != (pipeline.name, objective):
        raise ValueError(
            f"the problem was built for {problem.pipeline!r} ({problem.objective}), "
            f"not {pipeline.name!r} ({objective})"
        )
    assignment, solver, gap, pruned = solve_pruned(problem, time_limit_s)
    result = evaluate(problem, assignment)
    alternatives = _alternatives(problem, assignment, result) if explain else ()
    return Plan(
        pipeline=problem.pipeline,
        objective=objective,
        placements=result.placements,
        transfers=result.transfers,
        compute_cost_usd=result.compute_cost_usd,
        egress_cost_usd=result.egress_cost_usd,
        makespan_hours=result.makespan_hours,
        solver=solver,
        optimality_gap=gap,
        candidates=problem.n_candidates,
        rejections=_rejections(problem.rejections),
        policy_denials=_rejections(problem.denials),
        alternatives=alternatives,
        storage=copies_left(pipeline, platform, catalog.storage, result.placements, result.transfers),
        sizes=sizes,
        pruned_sites=tuple(sorted(pruned.items())) if explain else (),
    )


def _rejections(per_step: dict[str, dict[str, list[str]]]) -> tuple[Rejection, ...]:
    return tuple(
        Rejection(step=step, site=site, reasons=tuple(reasons))
        for step, per_site in per_step.items()
        for site, reasons in per_site.items()
    )


def solve(
    problem: Problem, time_limit_s: float = DEFAULT_TIME_LIMIT_S
) -> tuple[list[int], str, float | None]:
    """A site per step, the method that chose it, and the proven gap (0.0: optimal; None: no bound yet)."""
    assignment, solver, gap, _pruned = solve_pruned(problem, time_limit_s)
    return assignment, solver, gap


def solve_pruned(
    problem: Problem, time_limit_s: float = DEFAULT_TIME_LIMIT_S
) -> tuple[list[int], str, float | None, dict[str, str]]:
    """``solve``, plus the sites dropped as exactly dominated before solving and why (see ``prune``)."""
    pruned = prune_dominated(problem, split_terms(problem))
    reduced, terms = pruned.problem, pruned.terms
    if problem.objective == "cost" and tree_shaped(reduced, terms):
        return solve_tree(reduced, terms), "tree-dp", 0.0, pruned.reasons
    start = forest_start(reduced, terms) if problem.objective == "cost" else None
    assignment, gap = solve_milp(reduced, terms, time_limit_s, start)
    solver = method(reduced, terms) if start is not None else "milp-highs"
    return assignment, solver, gap, pruned.reasons


def _alternatives(problem: Problem, assignment: list[int], chosen: Evaluation) -> tuple[Alternative, ...]:
    """For each step, the best other sites and what the whole plan would cost if only that step moved."""
    found: list[Alternative] = []
    for i, step in enumerate(problem.steps):
        others = sorted(
            (s for s in problem.candidates[i] if s != assignment[i]),
            key=lambda s: problem.candidates[i][s][0].cost_usd,
        )
        scored = []
        for site in others:
            moved = list(assignment)
            moved[i] = site
            result = evaluate(problem, moved)
            scored.append((result.total_cost_usd, result.makespan_hours, site))
        scored.sort()
        for total, makespan, site in scored[:RUNNERS_UP_PER_STEP]:
            best = problem.candidates[i][site][0]
            found.append(
                Alternative(
                    step=step,
                    site=problem.sites[site],
                    offering=best.offering.name,
                    pricing=best.pricing,
                    total_cost_usd=total,
                    delta_usd=total - chosen.total_cost_usd,
                    makespan_hours=makespan,
                )
            )
    return tuple(found)
