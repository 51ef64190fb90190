"""The retry budget: retries are allowed while they stay a small fraction of recent requests.

Without a budget, a fleet where every site fails turns each client request into ``max_attempts`` upstream
requests, tripling the load on servers that are already sick. The rule (the one Finagle and Linkerd use):
over the last ``window_s`` seconds, a retry is allowed while
``retries + 1 <= ratio * requests + min_per_s * window_s``. The floor lets a quiet gateway still retry.
Counts are kept in one-second buckets, so the window slides in whole seconds and costs O(1) per call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["RetryBudget"]


class RetryBudget:
    """Counts requests and retries in a sliding window; ``clock`` is injectable for tests."""

    def __init__(
        self,
        ratio: float,
        min_per_s: float,
        *,
        window_s: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_s < 1:
            raise ValueError(f"window_s must be at least 1 second, got {window_s}")
        self.ratio = ratio
        self.min_per_s = min_per_s
        self.window_s = window_s
        self._clock = clock
        self._requests = [0] * window_s
        self._retries = [0] * window_s
        self._total_requests = 0
        self._total_retries = 0
        self._second = math.floor(clock())

    def _advance(self) -> int:
        """Move the window to now, zeroing the buckets of the seconds that went by; returns the bucket."""
        now = math.floor(self._clock())
        if now != self._second:
            if now - self._second >= self.window_s:
                self._requests = [0] * self.window_s
                self._retries = [0] * self.window_s
                self._total_requests = 0
                self._total_retries = 0
            else:
                for second in range(self._second + 1, now + 1):
                    slot = second % self.window_s
                    self._total_requests -= self._requests[slot]
                    self._total_retries -= self._retries[slot]
                    self._requests[slot] = 0
                    self._retries[slot] = 0
            self._second = now
        return now % self.window_s

    def record_request(self) -> None:
        """One client request arrived (retries are not requests)."""
        slot = self._advance()
        self._requests[slot] += 1
        self._total_requests += 1

    def allowance(self) -> float:
        """How many retries the window allows in total right now."""
        self._advance()
        return self.ratio * self._total_requests + self.min_per_s * self.window_s

    def try_acquire(self) -> bool:
        """Take one retry from the budget if it has room; False means: do not retry, answer now."""
        slot = self._advance()
        if self._total_retries + 1 > self.ratio * self._total_requests + self.min_per_s * self.window_s:
            return False
        self._retries[slot] += 1
        self._total_retries += 1
        return True

    @property
    def requests(self) -> int:
        """Requests in the current window."""
        self._advance()
        return self._total_requests

    @property
    def retries(self) -> int:
        """Retries in the current window."""
        self._advance()
        return self._total_retries
