"""Local search only ever returns feasible plans that cost no more, and leaves no single move that saves."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratus.catalog import Catalog
from stratus.config import Pipeline, Platform
from stratus.errors import InfeasibleError
from stratus.planner import Problem, build_problem, evaluate
from stratus.planner.local import improve, plan_cost
from stratus.planner.terms import split_terms
from tests.unit.planner_instances import pipelines, platforms

SLACK = 1e-6
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def planned(draw: st.DrawFn) -> tuple[Problem, list[int]] | None:
    """A small problem and a random feasible plan of it (None when the instance is infeasible)."""
    platform: Platform = draw(platforms())
    pipeline: Pipeline = draw(pipelines(platform))
    try:
        problem = build_problem(pipeline, platform, Catalog.bundled(), "cost")
    except InfeasibleError:
        return None
    return problem, [draw(st.sampled_from(problem.feasible_sites(i))) for i in range(len(problem.steps))]


def _cost(problem: Problem, assignment: list[int]) -> float:
    return float(evaluate(problem, assignment).total_cost_usd)


@SETTINGS
@given(planned())
def test_the_split_terms_price_a_plan_as_evaluate_does(case: tuple[Problem, list[int]] | None) -> None:
    if case is None:
        return
    problem, assignment = case
    assert abs(plan_cost(problem, split_terms(problem), assignment) - _cost(problem, assignment)) <= SLACK


@SETTINGS
@given(planned())
def test_improve_returns_a_feasible_plan_no_dearer_with_no_single_move_left_that_saves(
    case: tuple[Problem, list[int]] | None,
) -> None:
    if case is None:
        return
    problem, assignment = case
    found = improve(problem, split_terms(problem), list(assignment), time_budget_s=10.0)
    assert all(site in problem.candidates[i] for i, site in enumerate(found))
    cost = _cost(problem, found)
    assert cost <= _cost(problem, assignment) + SLACK
    for i, site in itertools.product(range(len(found)), range(len(problem.sites))):
        if site in problem.candidates[i]:
            moved = [*found[:i], site, *found[i + 1 :]]
            assert _cost(problem, moved) >= cost - SLACK, (i, site)
