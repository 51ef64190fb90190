"""Multi-site steps (distributed ranks, federated participants) on small cases worked out by hand.

Sites a ($1/h, EU), b ($2/h, EU), c ($0.50/h, US); every copy between sites costs $0.10/GB; each step runs
1 h. A distributed step's inputs go to its coordinator and fan out from there; every non-coordinator
machine exchanges ``exchange_gb`` with the coordinator in each direction.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from stratus.catalog import Catalog
from stratus.config import Pipeline, Platform
from stratus.errors import InfeasibleError
from stratus.planner import Plan, plan
from tests.unit.test_planner_model import _platform, _site


def platform() -> Platform:
    return _platform({"a": _site("EU", 1.0), "b": _site("EU", 2.0), "c": _site("US", 0.5)})


def run_plan(steps: dict[str, Any], datasets: dict[str, Any]) -> Plan:
    for step in steps.values():
        step.setdefault("run", "m:f")
        step.setdefault("estimated_hours", 1)
    pipeline = Pipeline.model_validate({"name": "p", "datasets": datasets, "steps": steps})
    return plan(pipeline, platform(), Catalog.bundled())


def sites_of(result: Plan, step: str) -> list[str]:
    placement = result.placement(step)
    return [placement.site, *(q.site for q in placement.participants)]


def test_distributed_picks_the_cheapest_coordinator_and_ranks_given_it() -> None:
    # Coordinator a (data already there): a $1 + rank c ($0.50 + 10 GB fan-out $1 + exchange 2×1 GB $0.20)
    # = $2.70. Coordinator c pays the $1 copy to itself and a rank at a ($1 + $1 + $0.20): $3.70.
    data = {"d": {"site": "a", "size_gb": 10}}
    steps = {"train": {"inputs": ["dataset:d"], "kind": "distributed", "sites": 2, "exchange_gb": 1}}
    result = run_plan(steps, data)
    assert sites_of(result, "train") == ["a", "c"]
    assert result.total_cost_usd == Decimal("2.7")
    [rank] = result.placement("train").participants
    assert rank.cost_usd == Decimal("0.5")  # its compute alone; the step's cost holds the traffic
    assert result.to_json()["steps"][0]["participants"] == [
        {"site": "c", "offering": "vm", "pricing": "on-demand"}
    ]


def test_ranks_receive_the_inputs_so_residency_binds_every_rank() -> None:
    data = {"d": {"site": "a", "size_gb": 10, "residency": "EU"}}
    steps = {"train": {"inputs": ["dataset:d"], "kind": "distributed", "sites": 2, "exchange_gb": 1}}
    result = run_plan(steps, data)
    # a + rank b ($2 + $1 fan-out + $0.20) = $4.20; b as coordinator pays the $1 copy too: $5.20.
    assert sites_of(result, "train") == ["a", "b"]
    assert result.total_cost_usd == Decimal("4.2")


def test_listed_sites_are_the_ranks_and_other_sites_are_turned_down_with_the_reason() -> None:
    data = {"d": {"site": "a", "size_gb": 10}}
    steps = {"train": {"inputs": ["dataset:d"], "kind": "distributed", "sites": ["b", "c"]}}
    result = run_plan(steps, data)
    assert sorted(sites_of(result, "train")) == ["b", "c"]
    # Either coordinator: $2 + $0.50 compute, the $1 copy to it and the $1 fan-out to the other rank.
    assert result.total_cost_usd == Decimal("4.5")
    reasons = {(r.step, r.site): r.reasons for r in result.rejections}
    assert reasons[("train", "a")] == ("sites: not among the step's sites ['b', 'c']",)


def test_more_ranks_than_compliant_sites_is_infeasible_and_says_so() -> None:
    data = {"d": {"site": "a", "size_gb": 1, "residency": "EU"}}
    steps = {"train": {"inputs": ["dataset:d"], "kind": "distributed", "sites": 3}}
    with pytest.raises(InfeasibleError) as err:
        run_plan(steps, data)
    assert "asks for 3 sites and only 2 can run it" in str(err.value)


def test_federated_moves_no_data_and_its_model_is_free_to_leave() -> None:
    data = {
        "eu": {"site": "a", "size_gb": 50, "residency": "EU"},
        "us": {"site": "c", "size_gb": 50, "residency": "US"},
    }
    steps = {
        "train": {
            "inputs": ["dataset:eu", "dataset:us"],
            "kind": "federated",
            "exchange_gb": 1,
            "outputs": {"model": {"size_gb": 0.1}},
        },
        "serve": {"inputs": ["train.model"]},
    }
    result = run_plan(steps, data)
    # Participants a ($1) and c ($0.50) whatever the coordinator; coordinating at one of them costs
    # only the other's exchange ($0.20): $1.70. At b it would add $2 and twice the exchange.
    assert sorted(sites_of(result, "train")) == ["a", "c"]
    assert all(not t.artifact.startswith("dataset:") for t in result.transfers)
    assert result.placement("serve").site == "c"  # the cheapest site: the model is not US/EU-bound
    assert result.placement("train").cost_usd == Decimal("1.7")


def test_a_federated_participant_that_cannot_run_the_step_blocks_it_with_the_reason() -> None:
    data = {"eu": {"site": "a", "size_gb": 1}, "us": {"site": "c", "size_gb": 1}}
    steps = {
        "train": {
            "inputs": ["dataset:eu", "dataset:us"],
            "kind": "federated",
            "resources": {"cpus": 4},
            "constraints": {"sites": ["a", "b"]},
        }
    }
    with pytest.raises(InfeasibleError) as err:
        run_plan(steps, data)
    assert "participant c: sites: not in constraints.sites" in str(err.value)


def test_a_site_listed_twice_holds_two_ranks_priced_as_two_machines_there() -> None:
    data = {"d": {"site": "b", "size_gb": 10}}
    steps = {"train": {"inputs": ["dataset:d"], "kind": "distributed", "sites": ["b", "b"]}}
    result = run_plan(steps, data)
    assert sites_of(result, "train") == ["b", "b"]
    # Two $2 machines at b; the data is already there and no copy or exchange leaves the site.
    assert result.total_cost_usd == Decimal("4")
