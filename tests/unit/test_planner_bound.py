"""The planner's proven bounds are bounds: never above the brute-force optimum, and tight where measured."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse import csc_array

from bench.planner.instances import make_instance, make_platform
from stratus.catalog import Catalog
from stratus.config import Pipeline, Platform
from stratus.errors import InfeasibleError
from stratus.planner import Problem, build_problem, evaluate, milp
from stratus.planner.bound import lower_bound
from stratus.planner.dualbound import safe_dual_bound
from stratus.planner.milp import lp_relaxation, relaxation_bound, solve_milp
from stratus.planner.terms import split_terms
from stratus.planner.warm import forest_start
from tests.unit.planner_instances import pipelines, platforms

SLACK = 1e-6


@st.composite
def instances(draw: st.DrawFn) -> tuple[Platform, Pipeline]:
    platform = draw(platforms())
    return platform, draw(pipelines(platform))


def _problem(instance: tuple[Platform, Pipeline]) -> Problem | None:
    platform, pipeline = instance
    try:
        return build_problem(pipeline, platform, Catalog.bundled(), "cost")
    except InfeasibleError:
        return None


def _optimum(problem: Problem) -> float:
    choices = [problem.feasible_sites(i) for i in range(len(problem.steps))]
    return min(float(evaluate(problem, list(a)).total_cost_usd) for a in itertools.product(*choices))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_the_decomposition_bound_never_exceeds_the_optimum_and_its_plans_are_feasible(
    instance: tuple[Platform, Pipeline],
) -> None:
    problem = _problem(instance)
    if problem is None:
        return
    terms = split_terms(problem)
    best = _optimum(problem)
    found = lower_bound(problem, terms, upper=best, time_budget_s=5.0)
    assert found.bound <= best + SLACK, (found.bound, best)
    for plan in found.plans:
        assert all(site in problem.candidates[i] for i, site in enumerate(plan))
        assert float(evaluate(problem, plan).total_cost_usd) >= best - SLACK


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_the_lp_relaxation_never_exceeds_the_optimum(instance: tuple[Platform, Pipeline]) -> None:
    problem = _problem(instance)
    if problem is None:
        return
    assert relaxation_bound(problem, split_terms(problem)) <= _optimum(problem) + SLACK


@pytest.fixture(scope="module")
def dag25() -> Problem:
    catalog = Catalog.bundled()
    platform, _gaps = make_platform(catalog)
    return build_problem(make_instance("dag", 25, 1, platform).pipeline, platform, catalog, "cost")


def test_the_lp_relaxation_of_a_25_step_dag_over_every_region_is_its_optimum(dag25: Problem) -> None:
    # Per-destination copies alone let each destination take its cheapest origin class: that LP was
    # $17.84 against the $18.29 optimum. Coupling each producer–reader pair as a transport closes it.
    terms = split_terms(dag25)
    assignment, gap = solve_milp(dag25, terms)
    optimum = float(evaluate(dag25, assignment).total_cost_usd)
    assert gap == 0.0
    assert optimum == pytest.approx(18.2897, abs=1e-4)
    assert relaxation_bound(dag25, terms) == pytest.approx(optimum, abs=1e-6)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_the_pdlp_bound_never_exceeds_the_optimum(instance: tuple[Platform, Pipeline]) -> None:
    problem = _problem(instance)
    if problem is None:
        return
    relaxed = lp_relaxation(problem, split_terms(problem))
    assert relaxed is not None
    assert relaxed.bound <= _optimum(problem) + SLACK
    assert all(site in problem.candidates[i] for i, site in enumerate(relaxed.rounded))


@pytest.mark.parametrize("loose", [False, True])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_the_lp_bounded_route_reports_a_gap_the_optimum_respects(
    loose: bool, instance: tuple[Platform, Pipeline]
) -> None:
    # Route every DAG through "LP bound, rounded LP solution, no branching", as 200 steps over 74
    # regions are (and with PDLP's loose tolerance, as 1000 steps are).
    problem = _problem(instance)
    if problem is None:
        return
    best = _optimum(problem)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(milp, "MAX_MILP_VARIABLES", 0)
        if loose:
            patch.setattr(milp, "LOOSE_LP_VARIABLES", 0)
        terms = split_terms(problem)
        assert milp.method(problem, terms) == "lp-bound"
        assignment, gap = solve_milp(problem, terms, 10.0, forest_start(problem, terms))
    assert all(site in problem.candidates[i] for i, site in enumerate(assignment))
    cost = float(evaluate(problem, assignment).total_cost_usd)
    assert gap is not None
    assert cost * (1 - gap) <= best + SLACK


def test_the_lp_bound_of_a_25_step_dag_over_every_region_is_its_optimum(dag25: Problem) -> None:
    # PDLP stops at a tolerance, but weak duality turns its row prices into a proven bound: here the
    # optimum itself; and the LP's solution, rounded, is an optimal plan.
    relaxed = lp_relaxation(dag25, split_terms(dag25))
    assert relaxed is not None
    assert relaxed.bound == pytest.approx(18.2897, abs=1e-4)
    assert float(evaluate(dag25, relaxed.rounded).total_cost_usd) == pytest.approx(18.2897, abs=1e-4)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_any_row_prices_give_a_bound_below_a_small_lp_optimum(sign: float) -> None:
    # min x0 + 2 x1 subject to x0 + x1 = 1, x0 - x1 <= 0.5, 0 <= x <= 1: optimum 1.25 at (0.75, 0.25).
    matrix = csc_array(np.array([[1.0, 1.0], [1.0, -1.0]]))
    args = (np.array([1.0, 2.0]), np.ones(2), matrix, np.array([1.0, -np.inf]), np.array([1.0, 0.5]))
    for prices in ([0.0, 0.0], [1.0, 0.0], [1.5, -0.5], [7.0, 3.0], [-2.0, 1.0]):
        assert safe_dual_bound(*args, sign * np.array(prices)) <= 1.25 + SLACK
    assert safe_dual_bound(*args, sign * np.array([1.5, -0.5])) == pytest.approx(1.25)
