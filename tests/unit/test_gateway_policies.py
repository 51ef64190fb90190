"""Routing policies of the gateway: the order in which a request tries its model's routable sites.

Sites are real :class:`SiteState` objects on a hand-driven clock; random choices use seeded generators,
and the statistical checks use bounds far outside the sampling noise of the draw counts.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from stratus.serving.gateway.config import HealthCheck, OutlierDetection, Upstream
from stratus.serving.gateway.health import SiteState
from stratus.serving.gateway.policies import EXPLORE, Route, order_sites


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def site(name: str, clock: Clock | None = None, *, healthy: bool = True, **fields: float) -> SiteState:
    upstream = Upstream(name=name, url=f"http://127.0.0.1:{9000 + len(name)}", **fields)
    state = SiteState(upstream, HealthCheck(), OutlierDetection(), clock=clock or Clock())
    if healthy:
        state.on_check(200, None, 0.001, state.clock())
    return state


def names(sites: list[SiteState]) -> list[str]:
    return [s.name for s in sites]


def test_failover_orders_by_priority_lowest_first_and_keeps_config_order_on_ties() -> None:
    sites = [site("a", priority=2), site("b", priority=0), site("c", priority=1), site("d", priority=0)]
    assert names(order_sites("failover", sites)) == ["b", "d", "c", "a"]
    # The random source does not matter to failover.
    assert names(order_sites("failover", sites, random.Random(1))) == ["b", "d", "c", "a"]


def test_cost_orders_cheapest_first_then_by_priority() -> None:
    sites = [
        site("pricey", cost_per_hour=3.0),
        site("cheap-backup", cost_per_hour=1.0, priority=5),
        site("cheap", cost_per_hour=1.0, priority=1),
        site("free", cost_per_hour=0.0),
    ]
    assert names(order_sites("cost", sites)) == ["free", "cheap", "cheap-backup", "pricey"]


def test_latency_orders_by_ewma_and_measures_unmeasured_sites_first() -> None:
    slow, fast, new = site("slow"), site("fast"), site("new")
    slow.on_success(0.020)
    fast.on_success(0.002)
    assert names(order_sites("latency", [slow, fast, new])) == ["new", "fast", "slow"]
    new.on_success(0.010)
    assert names(order_sites("latency", [slow, fast, new])) == ["fast", "new", "slow"]


def test_latency_ewma_follows_a_site_that_slows_down() -> None:
    a, b = site("a"), site("b")
    a.on_success(0.001)
    b.on_success(0.003)
    assert names(order_sites("latency", [a, b]))[0] == "a"
    for _ in range(5):
        a.on_success(0.010)
    assert a.ewma_s is not None
    assert a.ewma_s > 0.008
    assert names(order_sites("latency", [a, b]))[0] == "b"


def test_latency_explores_a_few_percent_of_requests_spread_over_the_other_sites() -> None:
    sites = [site("fast"), site("mid"), site("slow")]
    for s, latency in zip(sites, (0.001, 0.002, 0.003), strict=True):
        s.on_success(latency)
    rng = random.Random(42)
    draws = 20_000
    first = Counter(order_sites("latency", sites, rng)[0].name for _ in range(draws))
    explored = draws - first["fast"]
    # 5% of 20k is 1000 with a standard deviation of ~31: these bounds are ~6 sigma wide.
    assert 0.04 * draws < explored < 0.06 * draws
    assert pytest.approx(0.05) == EXPLORE
    assert abs(first["mid"] - first["slow"]) < 0.3 * explored
    # Exploration only moves one site to the front; the rest keep their latency order.
    for _ in range(200):
        order = names(order_sites("latency", sites, rng))
        rest = [n for n in ["fast", "mid", "slow"] if n != order[0]]
        assert order[1:] == rest


def test_weighted_picks_first_in_proportion_to_weight() -> None:
    sites = [site("a", weight=1.0), site("b", weight=3.0), site("zero", weight=0.0)]
    rng = random.Random(7)
    draws = 20_000
    orders = [names(order_sites("weighted", sites, rng)) for _ in range(draws)]
    first = Counter(order[0] for order in orders)
    assert first["zero"] == 0
    assert 0.72 < first["b"] / draws < 0.78  # expected 0.75, sigma ~0.003
    # Every order is a permutation of the candidates, weight-0 sites last (still usable for retries).
    assert all(sorted(order) == ["a", "b", "zero"] and order[-1] == "zero" for order in orders)
    # Without a random source: by weight, heaviest first.
    assert names(order_sites("weighted", sites)) == ["b", "a", "zero"]


def test_weighted_with_only_zero_weights_keeps_the_configured_order() -> None:
    sites = [site("a", weight=0.0), site("b", weight=0.0)]
    assert names(order_sites("weighted", sites, random.Random(3))) == ["a", "b"]


def test_unknown_policy_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown routing policy 'random'; expected one of failover"):
        order_sites("random", [site("a"), site("b")])  # type: ignore[arg-type]


def test_route_candidates_leave_out_unhealthy_ejected_and_drained_sites() -> None:
    clock = Clock()
    a, b, c, d = (site(n, clock, priority=p) for n, p in (("a", 0), ("b", 1), ("c", 2), ("d", 3)))
    route = Route("fraud", "failover", [a, b, c, d])
    assert names(route.candidates(clock(), random.Random(0))) == ["a", "b", "c", "d"]
    b.drained = True
    for _ in range(3):
        c.on_failure("reset: connection reset by peer", clock())
    d.on_check(None, "refused: connection refused", 0.001, clock())
    d.on_check(None, "refused: connection refused", 0.001, clock())
    assert names(route.candidates(clock(), None)) == ["a"]
    assert route.describe(clock()) == {
        "policy": "failover",
        "order": ["a"],
        "unavailable": {"b": "drained", "c": "ejected", "d": "unhealthy"},
    }


def replica(name: str, of: str, **fields: float) -> SiteState:
    """A backend that is one replica of site ``of`` (``Upstream.site``)."""
    upstream = Upstream(name=name, site=of, url=f"http://127.0.0.1:{9100 + len(name)}", **fields)
    state = SiteState(upstream, HealthCheck(), OutlierDetection(), clock=Clock())
    state.on_check(200, None, 0.001, state.clock())
    return state


def test_replicas_of_a_site_take_turns_and_a_retry_goes_to_another_site_first() -> None:
    a1, a2, a3 = (
        replica("a", "a", priority=0),
        replica("a~2", "a", priority=0),
        replica("a~3", "a", priority=0),
    )
    b = replica("b", "b", priority=1)
    route = Route("m", "failover", [a1, a2, a3, b])
    rng = random.Random(3)
    orders = [names(route.candidates(1000.0, rng)) for _ in range(4)]
    # Each request starts on the next replica of the preferred site; its first retry is the other site.
    assert orders == [
        ["a", "b", "a~2", "a~3"],
        ["a~2", "b", "a~3", "a"],
        ["a~3", "b", "a", "a~2"],
        ["a", "b", "a~2", "a~3"],
    ]
    # The admin view shows what the next request would try, and moves no turn.
    assert route.describe(1000.0)["order"] == route.describe(1000.0)["order"] == ["a~2", "b", "a~3", "a"]
    assert names(route.candidates(1000.0, rng))[0] == "a~2"
    a2.drained = True  # a drained replica (a scale-down) is skipped, the others keep taking turns
    firsts = Counter(names(route.candidates(1000.0, rng))[0] for _ in range(10))
    assert firsts == Counter({"a": 5, "a~3": 5})


def test_a_site_with_replicas_is_one_candidate_to_the_latency_policy() -> None:
    # Per backend, the fastest replica would get every request; per site, both replicas of the faster
    # site share them and the slower site is not preferred because it has fewer replicas.
    fast1, fast2, slow = replica("fast", "fast"), replica("fast~2", "fast"), replica("slow", "slow")
    fast1.on_success(0.001)
    fast2.on_success(0.003)
    slow.on_success(0.010)
    route = Route("m", "latency", [slow, fast1, fast2])
    rng = random.Random(7)
    firsts = Counter(names(route.candidates(1000.0, rng))[0] for _ in range(1000))
    assert min(firsts["fast"], firsts["fast~2"]) > 400, firsts
    assert firsts["slow"] < 100, firsts  # only the 5% exploration
