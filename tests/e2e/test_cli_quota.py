"""A team's quota under concurrency: parallel steps at one site never hold more than the quota at once.

Four independent steps of 2 vCPUs each, a site that could run all four together, and a quota of 4 vCPUs
for the team there: the runner must start them two at a time. Overlap is judged from the attempts'
recorded start and end times in the state database, never from how long the run took.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from stratus.state import Repository, default_url, open_database
from tests.run_world import platform, stratus_cli, write_world

pytestmark = pytest.mark.slow  # a real run: a worker process per step

STEPS = ("a", "b", "c", "d")


def parallel_pipeline() -> dict[str, Any]:
    steps = {
        name: {
            "run": "flow_steps:square",
            "inputs": ["dataset:numbers"],
            "outputs": {"squares": {}},
            "resources": {"cpus": 2, "memory_gb": 1},
            "estimated_hours": 0.1,
            "params": {"sleep": 0.6, "which": name},  # distinct params: four cache keys, four runs
        }
        for name in STEPS
    }
    return {
        "name": "fan-out",
        "tags": {"team": "tests"},
        "datasets": {
            "numbers": {
                "site": "cheap",
                "size_gb": 0.01,
                "make": "flow_steps:make_numbers",
                "params": {"n": 5},
            }
        },
        "steps": steps,
    }


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    """The largest number of intervals open at one instant (an end at t closes before a start at t)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


@pytest.mark.parametrize(("quota", "expected"), [(4.0, 2), (2.0, 1)])
def test_parallel_steps_never_exceed_the_teams_vcpu_quota(
    tmp_path: Path, quota: float, expected: int
) -> None:
    spec = platform()
    spec["sites"]["cheap"]["compute"]["capacity"]["max_parallel_steps"] = 4  # the site alone allows 4
    spec["quotas"] = {"tests": {"cheap": {"vcpus": quota}}}
    path = write_world(tmp_path, platform_spec=spec, pipeline_spec=parallel_pipeline())
    result = stratus_cli("run", path, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    repo = Repository(open_database(default_url(tmp_path / ".stratus")))
    (run,) = repo.runs()
    attempts = [a for a in repo.attempts(run.id) if a.step in STEPS]
    assert sorted(a.step for a in attempts) == list(STEPS)
    assert {a.site for a in attempts} == {"cheap"}
    intervals = [(a.started_at, a.finished_at) for a in attempts if a.finished_at is not None]
    assert len(intervals) == len(STEPS)
    assert most_at_once(intervals) == expected  # never more than the quota; as many as it allows


def test_without_a_quota_the_same_steps_do_overlap(tmp_path: Path) -> None:
    """The control: the assertion above can fail, because without the quota all four run together."""
    spec = platform()
    spec["sites"]["cheap"]["compute"]["capacity"]["max_parallel_steps"] = 4
    path = write_world(tmp_path, platform_spec=spec, pipeline_spec=parallel_pipeline())
    result = stratus_cli("run", path, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    repo = Repository(open_database(default_url(tmp_path / ".stratus")))
    (run,) = repo.runs()
    intervals = [
        (a.started_at, a.finished_at) for a in repo.attempts(run.id) if a.step in STEPS and a.finished_at
    ]
    assert most_at_once(intervals) > 2
