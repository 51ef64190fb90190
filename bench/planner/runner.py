"""Run one case in a child process under a time limit and collect what it reported."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.planner.instances import Shape

__all__ = ["CaseResult", "run_case", "run_killable"]

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CaseResult:
    """One (shape, steps) case as measured; ``status`` is ok, timeout, model-only or error."""

    shape: Shape
    steps: int
    status: str
    wall_s: float
    time_limit_s: float
    note: str = ""
    sites: int | None = None
    candidates: int | None = None
    sites_per_step: float | None = None
    multi_reader_flows: int | None = None
    build_s: float | None = None
    solve_s: float | None = None
    solver: str | None = None
    gap: float | None = None  # the planner's proven relative gap: 0 optimal, > 0 stopped at its limit
    cost_usd: Decimal | None = None
    peak_mb: float | None = None
    milp: dict[str, Any] = field(default_factory=dict)  # vars, binaries, rows, nonzeros, highs_s, nodes
    lp: dict[str, Any] = field(default_factory=dict)  # vars, rows, nonzeros, lp_s, message, priced
    check: dict[str, Any] = field(default_factory=dict)  # milp_cost_usd, milp_s, equal


def run_killable(
    command: list[str],
    timeout_s: float,
    env: dict[str, str] | None = None,
    memory_limit_bytes: int | None = None,
) -> tuple[int | None, str, str]:
    """Run ``command`` in its own process group; on timeout kill that group (solver children included).

    ``memory_limit_bytes`` caps the address space of the command and its children (RLIMIT_AS), so a
    runaway peer tool fails with MemoryError instead of taking the machine down.
    Returns (exit code or None on timeout, stdout, stderr) — what was printed before a kill included.
    """

    def limit_memory() -> None:
        if memory_limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))

    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        start_new_session=True,
        preexec_fn=limit_memory if memory_limit_bytes is not None else None,
    )
    try:
        out, err = process.communicate(timeout=timeout_s)
        return process.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        return None, out, err


def run_case(
    shape: Shape,
    steps: int,
    seed: int,
    *,
    repeats: int,
    check: bool,
    model_only: bool,
    time_limit_s: float,
    milp_time_limit_s: float,
) -> CaseResult:
    """Measure one case in a fresh interpreter (so peak RSS is this case's) and parse its events.

    ``milp_time_limit_s`` is the planner's own limit (it then returns its best plan and gap);
    ``time_limit_s`` is the hard limit at which the case process is killed.
    """
    command = [sys.executable, "-m", "bench.planner.case", shape, str(steps), str(seed)]
    command += ["--repeats", str(repeats), "--time-limit", str(milp_time_limit_s)]
    command += ["--check"] if check else []
    command += ["--model-only"] if model_only else []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    begun = time.perf_counter()
    code, out, err = run_killable(command, time_limit_s, env)
    wall = time.perf_counter() - begun
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    result = CaseResult(shape=shape, steps=steps, status="ok", wall_s=wall, time_limit_s=time_limit_s)
    for event in events:
        _apply(result, event)
    if code is None:
        result.status = "timeout"
        phase = "the check (MILP on the same problem)" if result.solver else "the solve"
        result.note = f"{phase} did not finish in {time_limit_s:.0f} s; killed"
    elif code != 0:
        result.status = "error"
        result.note = (err.strip().splitlines() or ["no output"])[-1]
    elif model_only:
        result.status = "model-only"
    return result


def _apply(result: CaseResult, event: dict[str, Any]) -> None:
    kind = event["event"]
    if kind == "problem":
        result.sites = event["sites"]
        result.candidates = event["candidates"]
        result.sites_per_step = event["sites_per_step"]
        result.multi_reader_flows = event["multi_reader_flows"]
        result.build_s = event["build_s"]
    elif kind == "milp_model":
        result.milp.update({k: v for k, v in event.items() if k != "event"})
    elif kind == "milp_solved":
        keys = ("status", "message", "nodes", "gap", "objective", "bound")
        result.milp.update({k: event.get(k) for k in keys})
    elif kind in ("lp_model", "lp_solved"):
        result.lp.update({k: v for k, v in event.items() if k != "event"})
    elif kind == "solved":
        result.solver = event["solver"]
        result.gap = event.get("gap")
        result.solve_s = event["solve_s"]
        result.cost_usd = Decimal(event["cost_usd"])
        if event.get("highs_s") is not None:
            result.milp["highs_s"] = event["highs_s"]
        result.peak_mb = event["peak_mb"]
    elif kind == "check":
        result.check = {k: v for k, v in event.items() if k != "event"}
    elif kind == "model_only":
        result.peak_mb = event["peak_mb"]
