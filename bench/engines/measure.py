"""The two measurements: wall time per step of each engine, and a 50-step fan-out through the runner.

Per step: the same no-op step, one at a time, submitted through the local executor, through the Ray
executor, and as a bare ``JobSubmissionClient`` submit-then-poll loop running the very same worker
command on the same cluster (polled as often as the executor polls). The engines take turns, so load
from the rest of the machine falls on all three alike. Fan-out: 50 independent steps through
``stratus run``, on a site whose compute is the Ray cluster and on the same site with local compute,
at the same number of steps at once.
"""

from __future__ import annotations

import shlex
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.results import REPO
from stratus.config import Resources
from stratus.executors import Executor, LocalExecutor, RayExecutor, StepRequest
from stratus.executors.process import write_request
from stratus.executors.ray_jobs import POLL_S, job_resources
from stratus.runner import run_file

__all__ = ["FanOut", "Overhead", "fan_out", "overhead"]

ENGINES = ("local executor", "Ray executor", "bare JobSubmissionClient")


@dataclass(frozen=True)
class Overhead:
    """Seconds per step, by engine."""

    seconds: dict[str, list[float]]

    def median(self, engine: str) -> float:
        """The median wall time of one step on ``engine``."""
        return statistics.median(self.seconds[engine])


@dataclass(frozen=True)
class FanOut:
    """One fan-out run through the runner."""

    engine: str
    steps: int
    parallel: int
    makespan_s: float
    mean_step_s: float
    ok: bool


def _request(folder: Path, name: str, step: str = "bench.engines.steps:noop") -> StepRequest:
    workdir = folder / name
    return StepRequest(
        run_id="bench",
        step=name,
        entrypoint=step,
        inputs={},
        outputs={"out": workdir / "outputs" / "out"},
        workdir=workdir,
        python_path=[REPO],
        resources=Resources(cpus=1, memory_gb=1),
    )


def _through(executor: Executor) -> Callable[[StepRequest], bool]:
    def run(request: StepRequest) -> bool:
        result = executor.submit(request).wait()
        return result is not None and result.ok

    return run


def _bare(address: str) -> Callable[[StepRequest], bool]:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)

    def run(request: StepRequest) -> bool:
        request_file = write_request(request, "bare", memory_limit_bytes=None)
        command = shlex.join(["python", "-m", "stratus.executors.worker", str(request_file)])
        job = client.submit_job(
            entrypoint=command, runtime_env={"env_vars": {"PYTHONUNBUFFERED": "1"}}, **job_resources(request)
        )
        while not client.get_job_status(job).is_terminal():
            time.sleep(POLL_S)
        return str(client.get_job_status(job).value) == "SUCCEEDED"

    return run


def overhead(address: str, folder: Path, steps: int, say: Callable[[str], None]) -> Overhead:
    """``steps`` timed no-op steps per engine (after one untimed warm-up each), engines taking turns."""
    runners = {
        ENGINES[0]: _through(LocalExecutor("local")),
        ENGINES[1]: _through(RayExecutor("ray", address)),
        ENGINES[2]: _bare(address),
    }
    seconds: dict[str, list[float]] = {engine: [] for engine in runners}
    for i in range(steps + 1):
        for engine, run in runners.items():
            started = time.monotonic()
            ok = run(_request(folder, f"{engine.split()[0]}-{i}"))
            elapsed = time.monotonic() - started
            if not ok:
                raise RuntimeError(f"{engine}: step {i} failed; see {folder}")
            if i > 0:
                seconds[engine].append(elapsed)
            say(f"  {engine}: step {i} {'(warm-up) ' if i == 0 else ''}{elapsed:.2f} s")
    return Overhead(seconds)


def _world(folder: Path, compute: dict[str, Any], steps: int, parallel: int, pause_s: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    # Beside the pipeline, as a user's step module is: both engines import it from the pipeline's folder.
    shutil.copy(Path(__file__).with_name("steps.py"), folder / "engine_steps.py")
    site = {
        "provider": "onprem",
        "region": "bench",
        "jurisdiction": "EU",
        "storage": "file://sites/here",
        "compute": {**compute, "capacity": {"max_parallel_steps": parallel}},
        "offerings": [{"name": "node", "vcpus": 16, "memory_gb": 64, "price_per_hour_usd": 1.0}],
    }
    (folder / "stratus.yaml").write_text(yaml.safe_dump({"sites": {"here": site}}), encoding="utf-8")
    pipeline = {
        "name": f"fan-out-{compute['backend']}",
        "steps": {
            f"s{i:02d}": {
                "run": "engine_steps:pause",
                "outputs": {"out": {"size_gb": 0.001}},
                "resources": {"cpus": 1, "memory_gb": 1},
                "estimated_hours": 0.01,
                "params": {"seconds": pause_s, "i": i},
            }
            for i in range(steps)
        },
    }
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline), encoding="utf-8")
    return path


def fan_out(
    engine: str, compute: dict[str, Any], folder: Path, steps: int, parallel: int, pause_s: float
) -> FanOut:
    """``steps`` independent steps of ``pause_s`` seconds each through ``stratus run``'s runner."""
    pipeline = _world(folder, compute, steps, parallel, pause_s)
    started = time.monotonic()
    report = run_file(pipeline, repair=False)
    makespan = time.monotonic() - started
    durations = [s.duration_s for s in report.steps]
    return FanOut(
        engine,
        steps,
        parallel,
        makespan,
        statistics.mean(durations) if durations else float("nan"),
        report.error is None,
    )
