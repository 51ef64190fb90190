"""Site state of the gateway: active health-check thresholds, passive outlier ejection with growing
ejection times, drains, and the reasons a client sees when no site can take its request.

Everything runs on a hand-driven clock: no sleeping.
"""

from __future__ import annotations

import pytest

from stratus.serving.gateway.config import HealthCheck, OutlierDetection, Upstream
from stratus.serving.gateway.health import EWMA_ALPHA, SiteState

REFUSED = "refused: connection refused by 127.0.0.1:9001"


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def make(
    clock: Clock,
    *,
    health: HealthCheck | None = None,
    outlier: OutlierDetection | None = None,
) -> SiteState:
    upstream = Upstream(name="eu", url="http://127.0.0.1:9001")
    return SiteState(upstream, health or HealthCheck(), outlier or OutlierDetection(), clock=clock)


def check(state: SiteState, clock: Clock, status: int | None, error: str | None = None) -> None:
    state.on_check(status, error, 0.002, clock())


def test_a_site_starts_unhealthy_and_is_healthy_after_the_threshold_of_passing_checks() -> None:
    clock = Clock()
    state = make(clock, health=HealthCheck(healthy_threshold=2))
    assert state.state(clock()) == "unhealthy"
    assert state.reason(clock()) == "not checked yet"
    check(state, clock, 200)
    assert not state.routable(clock())
    check(state, clock, 200)
    assert state.routable(clock())
    assert state.state(clock()) == "healthy"
    assert state.last_check_ms == pytest.approx(2.0)


def test_failing_checks_mark_unhealthy_only_at_the_threshold() -> None:
    clock = Clock()
    state = make(clock, health=HealthCheck(unhealthy_threshold=3))
    check(state, clock, 200)
    check(state, clock, None, REFUSED)
    check(state, clock, 500)
    assert state.routable(clock())
    check(state, clock, 200)  # a pass resets the failure streak
    check(state, clock, None, REFUSED)
    check(state, clock, None, REFUSED)
    assert state.routable(clock())
    check(state, clock, None, REFUSED)
    assert state.state(clock()) == "unhealthy"
    assert state.reason(clock()) == f"failing health checks ({REFUSED})"


def test_a_503_from_readiness_marks_unhealthy_at_once() -> None:
    clock = Clock()
    state = make(clock, health=HealthCheck(unhealthy_threshold=5))
    check(state, clock, 200)
    check(state, clock, 503)
    assert state.state(clock()) == "unhealthy"
    assert state.reason(clock()) == "failing health checks (HTTP 503)"


def test_consecutive_errors_eject_and_a_success_resets_the_streak() -> None:
    clock = Clock()
    state = make(clock, outlier=OutlierDetection(consecutive_errors=3, base_ejection_s=1.0))
    check(state, clock, 200)
    assert not state.on_failure(REFUSED, clock())
    assert not state.on_failure("HTTP 503", clock())
    state.on_success(0.001)
    assert not state.on_failure(REFUSED, clock())
    assert not state.on_failure(REFUSED, clock())
    assert state.routable(clock())
    assert state.on_failure(REFUSED, clock())
    assert state.state(clock()) == "ejected"
    assert state.ejections == 1
    assert state.failures == 5
    clock.now += 0.25
    assert state.reason(clock()) == f"ejected 0.8 s more after errors ({REFUSED})"
    # Failures while ejected (requests that were already in flight) do not eject again.
    assert not state.on_failure(REFUSED, clock())
    assert not state.on_failure(REFUSED, clock())
    assert not state.on_failure(REFUSED, clock())
    assert state.ejections == 1


def test_an_ejected_site_returns_only_when_the_ejection_is_over_and_a_check_has_passed() -> None:
    clock = Clock()
    state = make(clock, outlier=OutlierDetection(consecutive_errors=1, base_ejection_s=1.0))
    check(state, clock, 200)
    state.on_failure(REFUSED, clock())
    clock.now += 1.5
    assert state.state(clock()) == "unhealthy"  # ejection over, but no check has passed since
    assert not state.routable(clock())
    check(state, clock, 200)
    assert state.routable(clock())


def test_a_check_passing_during_the_ejection_does_not_cut_it_short() -> None:
    clock = Clock()
    state = make(clock, outlier=OutlierDetection(consecutive_errors=1, base_ejection_s=2.0))
    check(state, clock, 200)
    state.on_failure(REFUSED, clock())
    clock.now += 0.5
    check(state, clock, 200)
    assert state.state(clock()) == "ejected"
    clock.now += 1.5
    assert state.routable(clock())


def test_ejection_time_doubles_on_repeat_up_to_the_cap() -> None:
    clock = Clock()
    state = make(
        clock, outlier=OutlierDetection(consecutive_errors=1, base_ejection_s=1.0, max_ejection_s=5.0)
    )
    durations = []
    for _ in range(5):
        check(state, clock, 200)
        before = clock()
        state.on_failure(REFUSED, clock())
        durations.append(state.ejected_until - before)
        clock.now = state.ejected_until + 0.1  # back soon after, and failing again
    assert durations == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert state.ejections == 5


def test_the_ejection_streak_starts_over_after_a_quiet_period() -> None:
    clock = Clock()
    outlier = OutlierDetection(consecutive_errors=1, base_ejection_s=1.0, max_ejection_s=4.0)
    state = make(clock, outlier=outlier)
    check(state, clock, 200)
    state.on_failure(REFUSED, clock())
    clock.now = state.ejected_until + 0.5
    check(state, clock, 200)
    state.on_failure(REFUSED, clock())
    assert state.ejected_until - clock() == 2.0
    clock.now = state.ejected_until + outlier.max_ejection_s + 0.1  # a whole max_ejection_s without trouble
    check(state, clock, 200)
    state.on_failure(REFUSED, clock())
    assert state.ejected_until - clock() == 1.0


def test_drain_wins_over_every_other_state() -> None:
    clock = Clock()
    state = make(clock)
    check(state, clock, 200)
    state.drained = True
    assert state.state(clock()) == "drained"
    assert not state.routable(clock())
    assert state.reason(clock()) == "drained by an operator"
    state.drained = False
    assert state.routable(clock())


def test_ewma_moves_a_fixed_fraction_toward_each_sample() -> None:
    state = make(Clock())
    state.on_success(0.010)
    assert state.ewma_s == pytest.approx(0.010)
    state.on_success(0.020)
    assert state.ewma_s == pytest.approx(0.010 + EWMA_ALPHA * 0.010)
