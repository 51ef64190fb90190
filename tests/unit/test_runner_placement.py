"""The runner's placer builds the planner's problem once per (re-)plan and prices what the plan chose."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from stratus.catalog import Catalog
from stratus.config import Pipeline, Platform
from stratus.errors import InfeasibleError
from stratus.planner.candidates import Option
from stratus.runner.placement import PlacementPrice, Placer


def _platform() -> Platform:
    def site(price: float) -> dict[str, Any]:
        offering = {"name": "vm", "vcpus": 8, "memory_gb": 32, "price_per_hour_usd": price}
        return {
            "provider": "onprem",
            "region": "r",
            "jurisdiction": "EU",
            "continent": "europe",
            "storage": "memory://x",
            "offerings": [offering],
        }

    return Platform.model_validate({"sites": {"cheap": site(1.0), "dear": site(3.0)}})


def _pipeline() -> Pipeline:
    steps = {
        "train": {"run": "m:f", "estimated_hours": 2, "outputs": {"model": {"size_gb": 0.1}}},
        "score": {"run": "m:g", "inputs": ["train.model"]},
    }
    return Pipeline.model_validate({"name": "p", "steps": steps})


class CountingPolicy:
    """A plan policy that allows everything and counts how often each (step, site) was put to it: once
    per build of the planner's problem."""

    def __init__(self) -> None:
        self.asked: dict[tuple[str, str], int] = {}

    def __call__(
        self, step: str, site: str, residency: frozenset[str], options: Sequence[Option]
    ) -> list[tuple[str, ...]]:
        self.asked[(step, site)] = self.asked.get((step, site), 0) + 1
        return [() for _ in options]

    def builds(self) -> int:
        return self.asked.get(("score", "dear"), 0)


def test_the_first_plan_reuses_the_problem_built_up_front_and_each_replan_builds_one() -> None:
    policy = CountingPolicy()
    placer = Placer(_pipeline(), _platform(), Catalog.bundled(), "cost", policy)
    assert policy.builds() == 1  # up front, so an infeasible pipeline fails before a run starts

    first = placer.plan()
    assert policy.builds() == 1
    assert {p.step: p.site for p in first.placements} == {"train": "cheap", "score": "cheap"}

    placer.exclude("score", "cheap", "preempted")
    again = placer.plan(pinned={"train": "cheap"})
    assert policy.builds() == 2
    assert {p.step: p.site for p in again.placements} == {"train": "cheap", "score": "dear"}


def test_prices_come_from_the_problem_the_plan_was_solved_on() -> None:
    placer = Placer(_pipeline(), _platform(), Catalog.bundled(), "cost")
    placer.exclude("score", "cheap", "preempted")
    placed = {p.step: p for p in placer.plan().placements}
    assert placer.pricing(placed["score"]) == PlacementPrice(Decimal("3.0"), Decimal("3.0"), None)
    assert placer.offering("score", "dear", "vm") is not None
    assert placer.offering("score", "cheap", "vm") is None  # excluded: not among the last plan's candidates


def test_a_step_with_no_site_left_names_every_site_it_lost() -> None:
    placer = Placer(_pipeline(), _platform(), Catalog.bundled(), "cost")
    placer.mark_down("cheap", "store unreachable")
    placer.exclude("score", "dear", "preempted")
    with pytest.raises(InfeasibleError, match="no site is left for step 'score'") as caught:
        placer.plan()
    assert "cheap: site down: store unreachable" in str(caught.value)
    assert "dear: preempted" in str(caught.value)
