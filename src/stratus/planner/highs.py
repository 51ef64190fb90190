"""One call into HiGHS (highspy): a sparse MILP, an optional starting placement, tuned options, the outcome.

highspy rather than ``scipy.optimize.milp``: SciPy cannot pass HiGHS a starting solution, and the tree
DP's plan on a spanning forest (see ``warm``) gives the branch and bound a good incumbent from the first
second, so a run cut short at its time limit still returns a sound plan with a proven gap.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, replace

import highspy
import numpy as np
import numpy.typing as npt
from scipy.sparse import csc_array

__all__ = ["HIGHS_OPTIONS", "LP_OPTIONS", "HighsOutcome", "LpOutcome", "SparseModel", "run_highs", "run_lp"]

#: Exact (mip_rel_gap 0), single-threaded (the planner runs beside other work; the 2-core bench machine
#: gains nothing from more), quiet. Measured on bench/planner's DAGs only against SciPy's HiGHS and with
#: and without presolve; other options (heuristic effort, cuts) are not tuned yet.
HIGHS_OPTIONS: dict[str, bool | int | float | str] = {
    "output_flag": False,
    "mip_rel_gap": 0.0,
    "mip_abs_gap": 1e-9,
    "threads": 1,
}

#: The LP relaxation, for its row prices only (``dualbound`` turns any prices into a proven bound, so a
#: loose tolerance costs bound quality, never soundness). HiGHS's new PDLP ("hipdlp") at its default
#: tolerances, measured on the 200-step DAG over 74 regions (148,651 columns) in one run at load 4-6:
#: 5.9 s, against 18.3 s for cuPDLP-C ("pdlp"), 35.3 s for dual simplex and 68.0 s for the interior point
#: method without crossover; every one's bound was the LP's optimum to 1e-9.
LP_OPTIONS: dict[str, bool | int | float | str] = {
    "output_flag": False,
    "threads": 1,
    "solver": "hipdlp",
}

_banner_lock = threading.Lock()
_banner_done = False


@dataclass(frozen=True)
class SparseModel:
    """Minimise ``cost @ x`` subject to ``row_lower <= matrix @ x <= row_upper`` and ``0 <= x <= upper``;
    ``integer`` marks the integer columns (ignored by :func:`run_lp`)."""

    cost: npt.NDArray[np.float64]
    integer: npt.NDArray[np.int_]
    upper: npt.NDArray[np.float64]
    matrix: csc_array
    row_lower: npt.NDArray[np.float64]
    row_upper: npt.NDArray[np.float64]

    def with_cost(self, cost: npt.NDArray[np.float64]) -> SparseModel:
        """The same constraints under another objective (the time objective's two solves)."""
        return replace(self, cost=cost)


@dataclass(frozen=True)
class HighsOutcome:
    """Values (None: no feasible point found), whether optimality was proven, and the proven bound."""

    x: npt.NDArray[np.float64] | None
    proven: bool
    bound: float | None
    status: str
    objective: float | None
    nodes: int


@dataclass(frozen=True)
class LpOutcome:
    """The LP solver's status, its row prices and column values (None when it stopped without them)."""

    status: str
    row_prices: npt.NDArray[np.float64] | None
    values: npt.NDArray[np.float64] | None


def _quiet_highs() -> highspy.Highs:
    """A Highs object; the first one a process makes prints a banner on file descriptor 1, which would
    corrupt ``--json`` output, so that construction runs with fd 1 pointed at /dev/null."""
    global _banner_done
    with _banner_lock:
        if _banner_done:
            return highspy.Highs()  # type: ignore[no-untyped-call]
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 1)
                solver = highspy.Highs()  # type: ignore[no-untyped-call]
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _banner_done = True
        return solver


def run_highs(
    model: SparseModel, time_limit_s: float, start: dict[int, float] | None = None, presolve: bool = True
) -> HighsOutcome:
    """Solve ``model`` as a MILP; ``start`` may set the integer variables of a known feasible point (HiGHS
    completes the rest).

    highspy 1.16 given a partial start can answer "Optimal" with the start's values beside another
    point's objective (found by hypothesis: a 3-step plan returned at $1.91 "proven" at $1.90). An
    outcome whose values do not price at its objective, or break a row, is not trusted: the model is
    solved again from scratch.
    """
    outcome = _run_once(model, time_limit_s, start, presolve)
    if start and not _self_consistent(outcome, model):
        outcome = _run_once(model, time_limit_s, None, presolve)
    return outcome


def _self_consistent(outcome: HighsOutcome, model: SparseModel) -> bool:
    """Whether the values price at the reported objective and meet every row (to HiGHS's tolerances)."""
    if outcome.x is None or outcome.objective is None:
        return True
    tolerance = 1e-6 * max(1.0, abs(outcome.objective))
    if abs(float(model.cost @ outcome.x) - outcome.objective) > tolerance:
        return False
    activity = model.matrix @ outcome.x
    return bool(np.all(activity >= model.row_lower - 1e-6) and np.all(activity <= model.row_upper + 1e-6))


def _run_once(
    model: SparseModel, time_limit_s: float, start: dict[int, float] | None, presolve: bool
) -> HighsOutcome:
    solver = _configured(HIGHS_OPTIONS, time_limit_s)
    solver.setOptionValue("presolve", "on" if presolve else "off")
    solver.passModel(_lp(model, integer=True))
    if start:
        index = np.fromiter(start.keys(), dtype=np.int32, count=len(start))
        values = np.fromiter(start.values(), dtype=np.float64, count=len(start))
        solver.setSolution(len(start), index, values)
    solver.run()
    status = solver.getModelStatus()
    info = solver.getInfo()
    has_point = info.primal_solution_status == 2  # kSolutionStatusFeasible
    x = np.asarray(solver.getSolution().col_value, dtype=np.float64) if has_point else None
    proven = status == highspy.HighsModelStatus.kOptimal
    bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else None
    return HighsOutcome(
        x=x,
        proven=proven,
        bound=bound,
        status=solver.modelStatusToString(status),
        objective=float(info.objective_function_value) if has_point else None,
        nodes=int(info.mip_node_count),
    )


def run_lp(model: SparseModel, time_limit_s: float, kkt_tolerance: float | None = None) -> LpOutcome:
    """Solve ``model``'s continuous relaxation with ``LP_OPTIONS`` (and ``kkt_tolerance`` for every
    feasibility and optimality measure, when given); its row prices, when it reached its tolerances."""
    options = LP_OPTIONS if kkt_tolerance is None else {**LP_OPTIONS, "kkt_tolerance": kkt_tolerance}
    solver = _configured(options, time_limit_s)
    solver.passModel(_lp(model, integer=False))
    solver.run()
    status = solver.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:  # PDLP stopped early returns no usable prices
        return LpOutcome(status=solver.modelStatusToString(status), row_prices=None, values=None)
    solution = solver.getSolution()
    return LpOutcome(
        status=solver.modelStatusToString(status),
        row_prices=np.asarray(solution.row_dual, dtype=np.float64),
        values=np.asarray(solution.col_value, dtype=np.float64),
    )


def _configured(options: dict[str, bool | int | float | str], time_limit_s: float) -> highspy.Highs:
    solver = _quiet_highs()
    for name, value in {**options, "time_limit": float(time_limit_s)}.items():
        if solver.setOptionValue(name, value) != highspy.HighsStatus.kOk:
            raise ValueError(f"HiGHS rejected option {name}={value!r}")  # a typo would be ignored silently
    return solver


def _lp(model: SparseModel, integer: bool) -> highspy.HighsLp:
    """``model`` in HiGHS's form; with ``integer`` False its integer marks are dropped (the relaxation)."""
    lp = highspy.HighsLp()
    lp.num_col_ = len(model.cost)
    lp.num_row_ = len(model.row_lower)
    lp.col_cost_ = model.cost
    lp.col_lower_ = np.zeros(len(model.cost))
    lp.col_upper_ = model.upper
    lp.row_lower_ = model.row_lower
    lp.row_upper_ = model.row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = model.matrix.indptr
    lp.a_matrix_.index_ = model.matrix.indices
    lp.a_matrix_.value_ = model.matrix.data
    if integer and model.integer.any():
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
            for flag in model.integer
        ]
    return lp
