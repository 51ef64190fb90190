"""The planner's model on small cases whose right answer is worked out by hand in each test."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from stratus.catalog import Catalog
from stratus.config import Pipeline, Platform
from stratus.errors import InfeasibleError
from stratus.planner import Plan, plan


def _site(jurisdiction: str, price: float, **extra: Any) -> dict[str, Any]:
    offering: dict[str, Any] = {"name": "vm", "vcpus": 8, "memory_gb": 32, "price_per_hour_usd": price}
    offering.update(extra.pop("offering", {}))
    return {
        "provider": extra.pop("provider", "onprem"),
        "region": extra.pop("region", "r"),
        "jurisdiction": jurisdiction,
        "continent": "europe" if jurisdiction == "EU" else "north_america",
        "storage": "memory://x",
        "offerings": [offering, *extra.pop("more", [])],
        **extra,
    }


def _platform(sites: dict[str, Any], egress: float = 0.1, **extra: Any) -> Platform:
    overrides = [{"from": a, "to": b, "usd_per_gb": egress} for a in sites for b in sites if a != b]
    return Platform.model_validate({"sites": sites, "egress": overrides, **extra})


def _plan(
    platform: Platform, steps: dict[str, Any], datasets: dict[str, Any] | None = None, **kw: Any
) -> Plan:
    for step in steps.values():
        step.setdefault("run", "m:f")
    pipeline = Pipeline.model_validate({"name": "p", "datasets": datasets or {}, "steps": steps})
    return plan(pipeline, platform, Catalog.bundled(), **kw)


def test_cheaper_compute_wins_only_when_it_pays_for_the_copy() -> None:
    # 2 h at $1/h (home) vs $0.50/h (away) saves $1; moving 5 GB costs $0.50 → go away.
    platform = _platform({"home": _site("EU", 1.0), "away": _site("EU", 0.5)})
    data = {"d": {"site": "home", "size_gb": 5}}
    result = _plan(platform, {"t": {"inputs": ["dataset:d"], "estimated_hours": 2}}, data)
    assert result.placement("t").site == "away"
    assert result.total_cost_usd == Decimal("1.5")
    # 20 GB would cost $2 to move: stay home.
    data["d"]["size_gb"] = 20
    result = _plan(platform, {"t": {"inputs": ["dataset:d"], "estimated_hours": 2}}, data)
    assert result.placement("t").site == "home"
    assert result.egress_cost_usd == 0


def test_residency_keeps_derived_data_in_its_jurisdiction_until_declassified() -> None:
    platform = _platform({"eu": _site("EU", 1.0), "us": _site("US", 0.1)}, egress=0.0)
    data = {"d": {"site": "eu", "size_gb": 1, "residency": "EU"}}
    steps = {
        "clean": {"inputs": ["dataset:d"], "outputs": {"x": {"size_gb": 1}}},
        "aggregate": {"inputs": ["clean.x"], "outputs": {"stats": {}}, "declassify": True},
        "publish": {"inputs": ["aggregate.stats"]},
    }
    result = _plan(platform, steps, data)
    assert [result.placement(s).site for s in ("clean", "aggregate", "publish")] == ["eu", "eu", "us"]
    reasons = {(r.step, r.site): r.reasons for r in result.rejections}
    assert "residency: reads data that must stay in EU; site is in US" in reasons[("aggregate", "us")]
    assert ("publish", "us") not in reasons


def test_replicating_resident_data_out_of_its_jurisdiction_is_refused() -> None:
    platform = _platform({"eu": _site("EU", 1.0), "us": _site("US", 1.0)})
    data = {"d": {"site": "eu", "size_gb": 1, "residency": "EU"}}
    steps = {"t": {"inputs": ["dataset:d"], "outputs": {"x": {}}, "replicate": ["eu", "us"]}}
    with pytest.raises(InfeasibleError) as err:
        _plan(platform, steps, data)
    assert "steps.t.replicate: t.x must stay in EU; us is in US" in str(err.value)
    assert "declassify" in str(err.value)


def test_infeasible_lists_every_site_and_what_to_relax() -> None:
    platform = _platform({"a": _site("EU", 1.0), "b": _site("US", 1.0)})
    steps = {
        "train": {"resources": {"cpus": 4, "accelerators": "A100:8"}, "constraints": {"providers": ["aws"]}}
    }
    with pytest.raises(InfeasibleError) as err:
        _plan(platform, steps)
    message = str(err.value)
    assert "no site can run train" in message
    assert "a: provider: onprem not in constraints.providers ['aws']" in message
    assert "To relax: allow more constraints.providers." in message
    assert set(err.value.reasons["train"]) == {"a", "b"}


def test_accelerator_count_must_match_exactly() -> None:
    eight = {
        "name": "big",
        "vcpus": 96,
        "memory_gb": 1000,
        "accelerators": "A100:8",
        "price_per_hour_usd": 30,
    }
    platform = _platform({"a": _site("EU", 1.0, more=[eight])})
    with pytest.raises(InfeasibleError) as err:
        _plan(platform, {"t": {"resources": {"accelerators": "A100:1"}}})
    assert "resources: no offering with ≥1 vCPUs, ≥1 GB, A100:1 among 2 at this site" in str(err.value)
    assert _plan(platform, {"t": {"resources": {"accelerators": "a100:8"}}}).placement("t").offering == "big"


def test_spot_only_when_the_step_tolerates_it_and_reserved_when_cheaper() -> None:
    offering = {"spot_price_per_hour_usd": 0.3, "reserved": {"count": 1, "price_per_hour_usd": 0.6}}
    platform = _platform({"a": _site("EU", 1.0, offering=offering)})
    assert _plan(platform, {"t": {}}).placement("t").pricing == "reserved"
    spot = _plan(platform, {"t": {"spot": True}}).placement("t")
    assert (spot.pricing, spot.price_per_hour_usd) == ("spot", Decimal("0.3"))


def test_capacity_limits_what_one_step_may_use_at_a_site() -> None:
    small = _site("EU", 0.1, compute={"capacity": {"vcpus": 2}})
    platform = _platform({"small": small, "big": _site("EU", 1.0)})
    result = _plan(platform, {"t": {"resources": {"cpus": 4}}}, explain=True)
    assert result.placement("t").site == "big"
    assert any("capacity" in reason for r in result.rejections for reason in r.reasons)


def test_an_artifact_is_copied_once_per_site_from_its_cheapest_holder() -> None:
    sites = {"src": _site("EU", 9.0), "mirror": _site("EU", 9.0), "work": _site("EU", 1.0)}
    platform = Platform.model_validate(
        {
            "sites": sites,
            "egress": [
                {"from": "src", "to": "work", "usd_per_gb": 0.5},
                {"from": "mirror", "to": "work", "usd_per_gb": 0.01},
                {"from": "src", "to": "mirror", "usd_per_gb": 0.5},
                {"from": "work", "to": "src", "usd_per_gb": 0.5},
                {"from": "work", "to": "mirror", "usd_per_gb": 0.5},
                {"from": "mirror", "to": "src", "usd_per_gb": 0.5},
            ],
        }
    )
    data = {"d": {"site": "src", "replicas": ["mirror"], "size_gb": 10}}
    steps = {"a": {"inputs": ["dataset:d"]}, "b": {"inputs": ["dataset:d"]}}
    result = _plan(platform, steps, data)
    assert {result.placement("a").site, result.placement("b").site} == {"work"}
    assert [(t.from_site, t.to_site, t.cost_usd) for t in result.transfers] == [
        ("mirror", "work", Decimal("0.1"))
    ]
    assert result.transfers[0].reason == "input of a, b"


def test_dual_write_pays_for_every_replica() -> None:
    platform = _platform({"a": _site("EU", 1.0), "b": _site("EU", 2.0)}, egress=0.25)
    result = _plan(platform, {"t": {"outputs": {"x": {"size_gb": 4}}, "replicate": ["a", "b"]}})
    assert result.placement("t").site == "a"
    assert [(t.from_site, t.to_site, t.cost_usd, t.reason) for t in result.transfers] == [
        ("a", "b", Decimal("1.00"), "replica (dual-write)")
    ]


def test_time_objective_trades_money_for_a_shorter_makespan() -> None:
    # 100 GB at 0.1 Gbit/s is 2.2 h of copying; the remote site is cheaper but the local one is faster.
    platform = _platform({"home": _site("EU", 1.0), "away": _site("EU", 0.1)}, egress=0.0, transfer_gbps=0.1)
    data = {"d": {"site": "home", "size_gb": 100}}
    steps = {"t": {"inputs": ["dataset:d"], "estimated_hours": 1}}
    assert _plan(platform, steps, data).placement("t").site == "away"
    fast = _plan(platform, steps, data, objective="time")
    assert fast.placement("t").site == "home"
    assert fast.makespan_hours == pytest.approx(1.0)


def test_explain_ranks_runners_up_by_whole_plan_cost() -> None:
    platform = _platform({"a": _site("EU", 1.0), "b": _site("EU", 1.5), "c": _site("EU", 3.0)})
    result = _plan(platform, {"t": {}}, explain=True)
    assert [(a.site, a.delta_usd) for a in result.alternatives] == [
        ("b", Decimal("0.5")),
        ("c", Decimal("2.0")),
    ]


def test_a_region_the_bundled_catalog_lacks_says_why_and_how_to_fix() -> None:
    eu_azure = {"provider": "azure", "region": "westeurope", "storage": "memory://a", "jurisdiction": "EU"}
    platform = Platform.model_validate({"sites": {"az-eu": {**eu_azure, "continent": "europe"}}})
    with pytest.raises(InfeasibleError) as err:
        _plan(platform, {"t": {}})
    assert "az-eu: catalog: no catalog row for azure in region westeurope" in str(err.value)
    assert "covers US regions only" in str(err.value)
    assert "stratus catalog import DIR" in str(err.value)
