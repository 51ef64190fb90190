"""The gateway's retry budget: retries allowed while retries in the window ≤ ratio × requests + a floor.

Driven by a hand-moved clock, so the sliding window is checked second by second without sleeping.
"""

from __future__ import annotations

import pytest

from stratus.serving.gateway.retry import RetryBudget


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def retries_granted(budget: RetryBudget, wanted: int) -> int:
    return sum(budget.try_acquire() for _ in range(wanted))


def test_the_floor_allows_a_few_retries_with_no_traffic() -> None:
    budget = RetryBudget(0.2, 0.5, window_s=10, clock=Clock())
    assert budget.allowance() == pytest.approx(5.0)
    assert retries_granted(budget, 100) == 5


def test_retries_are_a_fraction_of_requests_plus_the_floor() -> None:
    budget = RetryBudget(0.2, 0.1, window_s=10, clock=Clock())
    for _ in range(100):
        budget.record_request()
    # 0.2 × 100 + 0.1 × 10 = 21
    assert retries_granted(budget, 1000) == 21
    assert budget.retries == 21
    assert budget.requests == 100
    # More traffic earns more retries.
    for _ in range(10):
        budget.record_request()
    assert retries_granted(budget, 1000) == 2


def test_a_zero_budget_allows_no_retry() -> None:
    budget = RetryBudget(0.0, 0.0, clock=Clock())
    for _ in range(50):
        budget.record_request()
    assert not budget.try_acquire()


def test_the_window_slides_by_whole_seconds() -> None:
    clock = Clock()
    budget = RetryBudget(0.5, 0.0, window_s=10, clock=clock)
    for _ in range(20):
        budget.record_request()
    assert retries_granted(budget, 100) == 10
    clock.now += 5
    for _ in range(10):
        budget.record_request()
    assert retries_granted(budget, 100) == 5  # 0.5 × 30 = 15, 10 already spent
    clock.now += 5  # the first second's 20 requests and 10 retries leave the window
    assert budget.requests == 10
    assert budget.retries == 5
    assert retries_granted(budget, 100) == 0  # 0.5 × 10 = 5, all 5 spent in the still-open seconds
    clock.now += 5
    assert (budget.requests, budget.retries) == (0, 0)


def test_a_long_pause_empties_the_window() -> None:
    clock = Clock()
    budget = RetryBudget(1.0, 0.0, window_s=10, clock=clock)
    for _ in range(7):
        budget.record_request()
    retries_granted(budget, 3)
    clock.now += 3600
    assert (budget.requests, budget.retries) == (0, 0)
    assert budget.allowance() == 0.0


def test_a_window_shorter_than_a_second_is_refused() -> None:
    with pytest.raises(ValueError, match="window_s must be at least 1 second, got 0"):
        RetryBudget(0.2, 1.0, window_s=0)
