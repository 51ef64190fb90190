"""The fraud example planned with and without the shipped library: wall time, decisions, policy time."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from stratus.catalog import Catalog
from stratus.config import load_pipeline, load_platform
from stratus.planner import plan
from stratus.planner.candidates import CandidatePolicy, Option
from stratus.policy import policy_gate

__all__ = ["PlanTiming", "time_plans"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud-detection"


@dataclass(frozen=True)
class PlanTiming:
    """Median seconds per plan, and the policy's share of the governed one."""

    plain_s: float
    governed_s: float
    policy_s: float  # median time inside the policy (worker start included, once per plan)
    decisions: int
    runs: int


def time_plans(runs: int) -> PlanTiming:
    """Plan the fraud pipeline ``runs`` times each way, a fresh gate (and worker) per governed plan."""
    plain_platform = load_platform(EXAMPLE / "stratus.yaml")
    governed_platform = load_platform(EXAMPLE / "governed.yaml")
    pipeline = load_pipeline(EXAMPLE / "pipeline.yaml", plain_platform)
    catalog = Catalog.bundled()
    plain, governed, inside = [], [], []
    decisions = 0
    for _ in range(runs):
        start = time.perf_counter()
        plan(pipeline, plain_platform, catalog)
        plain.append(time.perf_counter() - start)

        spent = [0.0]
        asked = [0]
        start = time.perf_counter()
        gate = policy_gate(governed_platform, EXAMPLE)
        try:
            judge = gate.plan_policy(pipeline)
            assert judge is not None
            plan(pipeline, governed_platform, catalog, policy=_timed(judge, spent, asked))
        finally:
            gate.close()
        governed.append(time.perf_counter() - start)
        inside.append(spent[0])
        decisions = asked[0]
    return PlanTiming(
        statistics.median(plain), statistics.median(governed), statistics.median(inside), decisions, runs
    )


def _timed(judge: CandidatePolicy, spent: list[float], asked: list[int]) -> CandidatePolicy:
    def timed(step: str, site: str, bound: frozenset[str], options: list[Option]) -> list[tuple[str, ...]]:
        start = time.perf_counter()
        try:
            return judge(step, site, bound, options)
        finally:
            spent[0] += time.perf_counter() - start
            asked[0] += len(options)

    return timed  # type: ignore[return-value]
