"""One benchmark case, run in its own process so a slow solve can be killed and peak memory is its own.

``python -m bench.planner.case SHAPE STEPS SEED [--repeats R] [--check] [--model-only] [--time-limit S]``
prints one JSON object per line as it goes (``event`` says which), so the parent still learns the
problem and MILP size when it has to kill the case at its hard limit. ``--time-limit`` is the planner's
own MILP limit (``solve(problem, time_limit_s)``), after which it returns its best plan and the gap.

The HiGHS call is observed by replacing ``stratus.planner.highs.run_highs`` (the planner's one call into
highspy) with a pass-through that reports the model's size before solving and the solver's statistics
after. Nothing else in the planner is touched.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import numpy as np

import stratus.planner.highs as planner_highs
from bench.planner.instances import SHAPES, Shape, make_instance, make_platform
from stratus.catalog import Catalog
from stratus.planner import Problem, build_problem, evaluate, solve
from stratus.planner.milp import solve_milp
from stratus.planner.terms import split_terms

__all__ = ["main"]

OPTIMALITY_TOLERANCE_USD = Decimal("0.000001")
# Repeat a measurement (best of R) only while one run stays below this: a solve that ran into the
# MILP's time limit would only measure the limit again.
REPEAT_BELOW_S = 5.0
T = TypeVar("T")


class _ModelOnlyError(Exception):
    """Raised by the HiGHS stand-in when only the model's size was asked for."""


def emit(event: str, **fields: Any) -> None:
    """One line of JSON on stdout, flushed, so a killed case still leaves what it knew."""
    print(json.dumps({"event": event, **fields}, default=str), flush=True)


def peak_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.planner.case")
    parser.add_argument("shape", choices=SHAPES)
    parser.add_argument("steps", type=int)
    parser.add_argument("seed", type=int)
    parser.add_argument("--repeats", type=int, default=1, help="best of R for build and solve")
    parser.add_argument("--check", action="store_true", help="also solve with the MILP and compare")
    parser.add_argument("--model-only", action="store_true", help="report the MILP's size, do not solve")
    parser.add_argument(
        "--time-limit", type=float, default=60.0, help="MILP seconds before it returns its best plan and gap"
    )
    args = parser.parse_args(argv)
    shape: Shape = args.shape

    catalog = Catalog.bundled()
    platform, _gaps = make_platform(catalog)
    instance = make_instance(shape, args.steps, args.seed, platform)
    emit("start", baseline_mb=peak_mb())

    problem, build_s = _best_of(
        args.repeats, lambda: build_problem(instance.pipeline, platform, catalog, "cost")
    )
    terms = split_terms(problem)
    emit(
        "problem",
        steps=len(problem.steps),
        sites=len(problem.sites),
        candidates=problem.n_candidates,
        sites_per_step=sum(len(c) for c in problem.candidates) / len(problem.steps),
        coupled_flows=len(terms.step_flows),
        multi_reader_flows=sum(1 for f in terms.step_flows if len(f.consumers) > 1),
        shared_datasets=len(terms.shared_datasets),
        build_s=build_s,
    )

    stats: list[dict[str, Any]] = []
    run_highs, run_lp = planner_highs.run_highs, planner_highs.run_lp
    planner_highs.run_highs = _observed_milp(run_highs, stats, args.model_only)
    planner_highs.run_lp = _observed_lp(run_lp, args.model_only)
    try:
        (assignment, solver, gap), solve_s = _best_of(args.repeats, lambda: solve(problem, args.time_limit))
    except _ModelOnlyError:
        emit("model_only", peak_mb=peak_mb())
        return
    finally:
        planner_highs.run_highs, planner_highs.run_lp = run_highs, run_lp
    result = evaluate(problem, assignment)
    emit(
        "solved",
        solver=solver,
        gap=float("inf") if gap is None else gap,  # inf: solved but no useful bound proven
        solve_s=solve_s,
        cost_usd=result.total_cost_usd,
        compute_usd=result.compute_cost_usd,
        egress_usd=result.egress_cost_usd,
        highs_s=min((s["highs_s"] for s in stats), default=None),
        peak_mb=peak_mb(),
    )
    if args.check:
        _check(problem, result.total_cost_usd, solver, args.time_limit)
    emit("done", peak_mb=peak_mb())


def _best_of(repeats: int, run: Callable[[], T]) -> tuple[T, float]:
    best = float("inf")
    value: T | None = None
    for _ in range(max(1, repeats)):
        begun = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - begun)
        if best > REPEAT_BELOW_S:
            break
    assert value is not None
    return value, best


def _observed_milp(original: Callable[..., Any], stats: list[dict[str, Any]], model_only: bool) -> Any:
    def observed(*args: Any, **kwargs: Any) -> Any:
        model = args[0]
        size = {
            "vars": len(model.cost),
            "binaries": int(np.sum(model.integer)),
            "rows": int(model.matrix.shape[0]),
            "nonzeros": int(model.matrix.nnz),
            "warm_start": bool(args[2] if len(args) > 2 else kwargs.get("start")),
        }
        if not stats:
            emit("milp_model", **size)
        if model_only:
            raise _ModelOnlyError
        begun = time.perf_counter()
        result = original(*args, **kwargs)
        objective, bound = result.objective, result.bound
        record = {
            "highs_s": time.perf_counter() - begun,
            "status": 0 if result.proven else 1,
            "message": result.status,
            "nodes": result.nodes,
            "gap": (objective - bound) / objective if objective and bound is not None else None,
            "objective": objective,
            "bound": bound,
        }
        stats.append(record)
        if len(stats) == 1:
            emit("milp_solved", **record)
        return result

    return observed


def _observed_lp(original: Callable[..., Any], model_only: bool) -> Any:
    """Report the LP relaxation's size and PDLP's time and status (the first call of a case only)."""
    calls: list[bool] = []

    def observed(*args: Any, **kwargs: Any) -> Any:
        cost, matrix = args[0].cost, args[0].matrix
        if model_only:
            emit("lp_model", vars=len(cost), rows=int(matrix.shape[0]), nonzeros=int(matrix.nnz))
            raise _ModelOnlyError
        begun = time.perf_counter()
        result = original(*args, **kwargs)
        if not calls:
            calls.append(True)
            emit(
                "lp_solved",
                vars=len(cost),
                rows=int(matrix.shape[0]),
                nonzeros=int(matrix.nnz),
                lp_s=time.perf_counter() - begun,
                message=result.status,
                priced=result.row_prices is not None,
            )
        return result

    return observed


def _check(problem: Problem, cost: Decimal, solver: str, time_limit_s: float) -> None:
    """Compare the tree DP's cost with the MILP's on the same Problem (only meaningful for the DP).

    ``equal`` only proves something when the MILP proved its optimum (``milp_gap`` 0); a MILP stopped
    at its time limit can only be worse than the DP, never better, or the DP is wrong.
    """
    if solver != "tree-dp":
        return
    begun = time.perf_counter()
    other, gap = solve_milp(problem, split_terms(problem), time_limit_s)
    milp_s = time.perf_counter() - begun
    milp_cost = evaluate(problem, other).total_cost_usd
    emit(
        "check",
        milp_cost_usd=milp_cost,
        milp_s=milp_s,
        milp_gap=float("inf") if gap is None else gap,
        difference_usd=milp_cost - cost,
        equal=abs(milp_cost - cost) <= OPTIMALITY_TOLERANCE_USD,
        dp_beaten=milp_cost < cost - OPTIMALITY_TOLERANCE_USD,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
