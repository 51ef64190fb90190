"""The planner is exact: on random small instances it matches brute force over every assignment."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratus.catalog import Catalog
from stratus.config import Pipeline, Platform
from stratus.errors import InfeasibleError
from stratus.planner import Evaluation, Problem, build_problem, evaluate, solve
from stratus.planner.milp import solve_milp
from stratus.planner.terms import split_terms
from stratus.planner.tree import solve_tree, tree_shaped
from tests.unit.planner_instances import pipelines, platforms

TOLERANCE = Decimal("0.000001")
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def instances(draw: st.DrawFn, tree: bool = False) -> tuple[Platform, Pipeline]:
    platform = draw(platforms())
    return platform, draw(pipelines(platform, tree=tree))


def _problem(instance: tuple[Platform, Pipeline], objective: str) -> Problem | None:
    platform, pipeline = instance
    try:
        return build_problem(pipeline, platform, Catalog.bundled(), objective)  # type: ignore[arg-type]
    except InfeasibleError:
        return None


def _all_evaluations(problem: Problem) -> list[Evaluation]:
    choices = [problem.feasible_sites(i) for i in range(len(problem.steps))]
    return [evaluate(problem, list(assignment)) for assignment in itertools.product(*choices)]


@SETTINGS
@given(instances())
def test_cost_objective_matches_brute_force(instance: tuple[Platform, Pipeline]) -> None:
    problem = _problem(instance, "cost")
    if problem is None:
        return
    assignment, _, gap = solve(problem)
    assert gap == 0.0
    found = evaluate(problem, assignment).total_cost_usd
    best = min(e.total_cost_usd for e in _all_evaluations(problem))
    assert abs(found - best) <= TOLERANCE, (found, best)


@SETTINGS
@given(instances())
def test_time_objective_matches_brute_force(instance: tuple[Platform, Pipeline]) -> None:
    problem = _problem(instance, "time")
    if problem is None:
        return
    assignment, solver, gap = solve(problem)
    assert gap == 0.0
    assert solver == "milp-highs"
    found = evaluate(problem, assignment)
    everything = _all_evaluations(problem)
    fastest = min(e.makespan_hours for e in everything)
    assert found.makespan_hours == pytest.approx(fastest, abs=1e-6)
    cheapest_fastest = min(e.total_cost_usd for e in everything if e.makespan_hours <= fastest + 1e-6)
    assert abs(found.total_cost_usd - cheapest_fastest) <= TOLERANCE


@SETTINGS
@given(instances(tree=True))
def test_tree_dp_agrees_with_milp_and_brute_force(instance: tuple[Platform, Pipeline]) -> None:
    problem = _problem(instance, "cost")
    if problem is None:
        return
    terms = split_terms(problem)
    assert tree_shaped(problem, terms)
    by_dp = evaluate(problem, solve_tree(problem, terms)).total_cost_usd
    by_milp = evaluate(problem, solve_milp(problem, terms)[0]).total_cost_usd
    best = min(e.total_cost_usd for e in _all_evaluations(problem))
    assert abs(by_dp - best) <= TOLERANCE
    assert abs(by_milp - best) <= TOLERANCE
