"""``compare`` re-solves the exact planner under narrower rules: each row is the brute-force best under
its rule, and the saving adds up."""

from __future__ import annotations

import itertools
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratus.catalog import Catalog
from stratus.config import Pipeline, Platform
from stratus.errors import InfeasibleError
from stratus.planner import build_problem, compare, evaluate
from tests.unit.planner_instances import pipelines, platforms

TOLERANCE = Decimal("0.000001")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def instances(draw: st.DrawFn) -> tuple[Platform, Pipeline]:
    platform = draw(platforms())
    return platform, draw(pipelines(platform, max_steps=4))


def _brute_best(platform: Platform, pipeline: Pipeline, allowed: set[str]) -> Decimal | None:
    problem = build_problem(pipeline, platform, Catalog.bundled(), "cost")
    choices = [
        [s for s in problem.feasible_sites(i) if problem.sites[s] in allowed]
        for i in range(len(problem.steps))
    ]
    costs = [evaluate(problem, list(a)).total_cost_usd for a in itertools.product(*choices)]
    return min(costs, default=None)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # brute force
@given(instances())
def test_every_single_provider_row_is_the_brute_force_best_on_that_provider(
    instance: tuple[Platform, Pipeline],
) -> None:
    platform, pipeline = instance
    try:
        result = compare(pipeline, platform, Catalog.bundled())
    except InfeasibleError:
        return
    stratus = result.stratus.total_cost_usd
    assert stratus is not None
    for row in result.rows:
        if row.kind == "provider":
            provider = row.label.removesuffix(" only")
            members = {n for n, s in platform.sites.items() if s.provider == provider}
            best = _brute_best(platform, pipeline, members)
            if best is None:
                assert row.total_cost_usd is None
                assert row.infeasible
            else:
                assert row.total_cost_usd is not None
                assert abs(row.total_cost_usd - best) <= TOLERANCE, (row, best)
        if row.total_cost_usd is not None:
            # Narrower rules never beat the plan over every site; spot off never makes a plan cheaper.
            assert row.total_cost_usd >= stratus - TOLERANCE
            assert row.on_demand_cost_usd is not None
            if row.kind != "skypilot":  # a heuristic's spot plan may cost more than its on-demand one
                assert row.on_demand_cost_usd >= row.total_cost_usd - TOLERANCE
    if result.saving is not None:
        s = result.saving
        assert s.spot_usd + s.placement_usd == s.total_usd
        assert s.spot_usd >= -TOLERANCE
        assert s.placement_usd >= -TOLERANCE


def test_a_provider_with_no_site_for_a_step_says_which_step_and_why() -> None:
    offering = {"name": "cpu", "vcpus": 8, "memory_gb": 32, "price_per_hour_usd": 1.0}
    gpu = {"name": "gpu", "vcpus": 8, "memory_gb": 32, "accelerators": "L4:1", "price_per_hour_usd": 2.0,
           "spot_price_per_hour_usd": 0.5}  # fmt: skip
    sites = {
        "a": {"provider": "aws", "region": "r1", "offerings": [offering]},
        "g": {"provider": "gcp", "region": "r2", "offerings": [offering, gpu]},
    }
    platform = Platform.model_validate(
        {
            "sites": {
                name: {
                    **spec,
                    "jurisdiction": "US",
                    "continent": "north_america",
                    "storage": f"memory://{name}",
                }
                for name, spec in sites.items()
            },
            "egress": [
                {"from": "a", "to": "g", "usd_per_gb": 0.1},
                {"from": "g", "to": "a", "usd_per_gb": 0.1},
            ],
        }
    )
    pipeline = Pipeline.model_validate(
        {
            "name": "p",
            "datasets": {"d": {"site": "a", "size_gb": 10}},
            "steps": {
                "prep": {"run": "m:f", "inputs": ["dataset:d"], "outputs": {"o": {"size_gb": 1}}},
                "train": {
                    "run": "m:f",
                    "inputs": ["prep.o"],
                    "outputs": {"m": {}},
                    "resources": {"cpus": 4, "memory_gb": 8, "accelerators": "L4:1"},
                    "estimated_hours": 2,
                    "spot": True,
                },
            },
        }
    )
    result = compare(pipeline, platform, Catalog.bundled())
    rows = {row.label: row for row in result.rows}
    assert rows["aws only"].infeasible is not None
    assert rows["aws only"].infeasible.startswith("train: resources: no offering with ≥4 vCPUs, ≥8 GB, L4:1")
    # Stratus: prep next to the data on aws (1 h × $1), 1 GB to gcp ($0.10), train on gcp spot (2 h × $0.5).
    assert result.stratus.total_cost_usd == Decimal("2.1")
    # gcp only: prep on gcp pays for moving all 10 GB ($1.00) instead of 1 GB.
    assert rows["gcp only"].total_cost_usd == Decimal("3.0")
    assert rows["gcp only"].on_demand_cost_usd == Decimal("6.0")
    assert result.saving is not None
    assert (result.saving.spot_usd, result.saving.placement_usd) == (Decimal("3.0"), Decimal("0.9"))
    # SkyPilot's model sees the same prices here (the two sites are different clouds).
    assert rows["SkyPilot's model, re-priced"].total_cost_usd == Decimal("2.1")
