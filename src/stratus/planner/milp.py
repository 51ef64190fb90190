"""Exact placement for any DAG as a mixed-integer program solved by HiGHS.

Kept small on purpose: one binary per (step, site) — offerings at a site only differ in price, so the
cheapest one stands for them all — and egress is linearised over *classes* of sites (see ``factor``),
not over every pair of sites, with a correction for a reader placed at the producer's own site.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_array, csc_array

from stratus.errors import PlanError
from stratus.planner import highs
from stratus.planner.evaluate import duration, evaluate
from stratus.planner.factor import Factored, factor_rates
from stratus.planner.problem import Flow, Problem
from stratus.planner.terms import Terms, dataset_rates

__all__ = ["solve_milp"]

INF = float("inf")


@dataclass
class _Model:
    """A growing sparse MILP: variables with cost and bounds, and rows of linear constraints."""

    cost: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    integer: list[int] = field(default_factory=list)
    row: list[int] = field(default_factory=list)
    col: list[int] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    row_lb: list[float] = field(default_factory=list)
    row_ub: list[float] = field(default_factory=list)

    def var(self, cost: float = 0.0, upper: float = INF, integer: bool = False) -> int:
        self.cost.append(cost)
        self.upper.append(upper)
        self.integer.append(1 if integer else 0)
        return len(self.cost) - 1

    def add(self, terms: list[tuple[int, float]], lb: float, ub: float) -> None:
        r = len(self.row_lb)
        for j, v in terms:
            self.row.append(r)
            self.col.append(j)
            self.val.append(v)
        self.row_lb.append(lb)
        self.row_ub.append(ub)

    def solve(
        self,
        objective: list[float],
        time_limit: float,
        start: dict[int, float] | None = None,
        presolve: bool = True,
    ) -> tuple[npt.NDArray[np.float64], float | None]:
        """Values of every variable, and None when HiGHS proved them optimal, else its proven lower bound."""
        n = len(self.cost)
        matrix = csc_array(coo_array((self.val, (self.row, self.col)), shape=(len(self.row_lb), n)))
        arrays = (
            np.array(objective),
            np.array(self.integer),
            np.array(self.upper),
            matrix,
            np.array(self.row_lb),
            np.array(self.row_ub),
        )
        result = highs.run_highs(*arrays, time_limit, start, presolve)
        if result.status == "Infeasible" and presolve:
            # HiGHS's presolve has called a feasible model infeasible (scipy 1.17's HiGHS did, on the time
            # objective's second solve capped at the makespan the first had just reached, on a 4-step
            # case hypothesis found). Every model here has a solution, so ask again without presolve.
            result = highs.run_highs(*arrays, time_limit, start, presolve=False)
        if result.x is None:
            raise PlanError(
                f"the MILP solver found no placement within {time_limit:g} s ({result.status}); "
                "raise --time-limit"
            )
        return result.x, None if result.proven else (result.bound if result.bound is not None else -INF)


def solve_milp(
    problem: Problem, terms: Terms, time_limit: float = 60.0, start: list[int] | None = None
) -> tuple[list[int], float | None]:
    """The optimal site per step (least cost, or least makespan then least cost for ``objective: time``).

    ``start``, a site per step that is feasible (e.g. the tree DP's on a spanning forest), is handed to
    HiGHS as its first incumbent. Also returns the proven relative optimality gap: 0.0 when HiGHS
    proved the optimum; past
    ``time_limit`` seconds, how far the returned placement (priced by ``evaluate``) may be above the
    proven lower bound; None when no useful bound was proven yet. Callers never mistake one for another.
    """
    model = _Model()
    n = len(problem.steps)
    x: list[dict[int, int]] = []
    for i in range(n):
        x.append({s: model.var(float(terms.unary[i, s]), 1.0, True) for s in problem.feasible_sites(i)})
        model.add([(v, 1.0) for v in x[i].values()], 1.0, 1.0)
    factor_cache: dict[tuple[int, ...], Factored] = {}
    for flow in terms.step_flows:
        key = flow.replicas
        if key not in factor_cache:
            factor_cache[key] = factor_rates(problem.pair_rates(flow), problem.site_labels)
        _add_step_flow(model, problem, flow, x, factor_cache[key])
    for flow in terms.shared_datasets:
        _add_shared_dataset(model, problem, flow, x)

    warm = None if start is None else {x[i][site]: 1.0 for i, site in enumerate(start) if site in x[i]}
    fastest_proven = True
    if problem.objective == "time":
        makespan = _add_timing(model, problem, x)
        only_time = [0.0] * len(model.cost)
        only_time[makespan] = 1.0
        # HiGHS 1.16's presolve returned a proven "optimum" 75% above the true one on the capped cost
        # solve of a 4-step case hypothesis found (the same assignment without presolve: exact). Models
        # with timing rows are solved without it.
        fastest, time_bound = model.solve(only_time, time_limit, warm, presolve=False)
        fastest_proven = time_bound is None
        best = fastest[makespan]
        # HiGHS meets rows only to its feasibility tolerance (1e-7), so the makespan it reports can sit a
        # hair below what the same assignment needs; capping at exactly that value made the second solve
        # infeasible. A microsecond-scale slack admits only ties.
        model.add([(makespan, 1.0)], 0.0, best * (1 + 1e-7) + 1e-6)
    values, bound = model.solve(model.cost, time_limit, warm, presolve=problem.objective == "cost")
    assignment = [max(x[i], key=lambda s: values[x[i][s]]) for i in range(n)]
    if bound is None and fastest_proven:
        return assignment, 0.0
    if not fastest_proven or bound is None or bound <= 0:
        return assignment, None
    # HiGHS's own gap compares with its incumbent's objective, whose continuous variables may not be
    # tight yet; the plan's true price is what ``evaluate`` says.
    cost = float(evaluate(problem, assignment).total_cost_usd)
    return assignment, max(0.0, (cost - bound) / cost) if cost > 0 else None


def _needs(model: _Model, flow: Flow, x: list[dict[int, int]]) -> dict[int, int]:
    """A 0/1 variable per site saying 'some reader of this artifact runs here'."""
    if len(flow.consumers) == 1:
        return dict(x[flow.consumers[0]])
    needs: dict[int, int] = {}
    for c in flow.consumers:
        for site, var in x[c].items():
            if site not in needs:
                needs[site] = model.var(0.0, 1.0)
            model.add([(var, 1.0), (needs[site], -1.0)], -INF, 0.0)
    return needs


def _add_step_flow(
    model: _Model, problem: Problem, flow: Flow, x: list[dict[int, int]], fac: Factored
) -> None:
    assert flow.producer is not None
    if len(flow.consumers) == 1:
        _add_single_reader(model, flow, x, fac)
    else:
        _add_many_readers(model, flow, x, fac)


def _add_single_reader(model: _Model, flow: Flow, x: list[dict[int, int]], fac: Factored) -> None:
    """One reader: a transportation problem between origin classes and reader classes, with a refund
    when the reader sits at the producer's own site (small, and tight on a tree)."""
    assert flow.producer is not None
    origin, needs, size = x[flow.producer], x[flow.consumers[0]], flow.size_gb
    row_groups = sorted({int(fac.rows[o]) for o in origin})
    col_groups = sorted({int(fac.cols[d]) for d in needs})
    flows = {(k, j): model.var(float(fac.table[k, j]) * size) for k in row_groups for j in col_groups}
    for j in col_groups:
        members = [(needs[d], -1.0) for d in needs if fac.cols[d] == j]
        model.add([(flows[k, j], 1.0) for k in row_groups] + members, 0.0, 0.0)
    for k in row_groups:
        at_origin = [(origin[o], -1.0) for o in origin if fac.rows[o] == k]
        model.add([(flows[k, j], 1.0) for j in col_groups] + at_origin, 0.0, 0.0)
    for d in set(origin) & set(needs):
        refund = float(fac.table[fac.rows[d], fac.cols[d]]) * size
        if refund > 0:
            same = model.var(-refund, 1.0)
            model.add([(same, 1.0), (origin[d], -1.0)], -INF, 0.0)
            model.add([(same, 1.0), (needs[d], -1.0)], -INF, 0.0)


def _add_many_readers(model: _Model, flow: Flow, x: list[dict[int, int]], fac: Factored) -> None:
    """Several readers: every site that needs a copy takes it from the producer's class, or for free
    when the producer is that site. Per needed site rather than per class of sites: counting sites per
    class needs a big-M whose LP bound HiGHS cannot close (measured: 50 steps never proven vs 213 s)."""
    assert flow.producer is not None
    origin, size = x[flow.producer], flow.size_gb
    needs = _needs(model, flow, x)
    row_groups = sorted({int(fac.rows[o]) for o in origin})
    members = {k: [o for o in origin if fac.rows[o] == k] for k in row_groups}
    for d, need in needs.items():
        j = int(fac.cols[d])
        by_class = {k: model.var(float(fac.table[k, j]) * size, 1.0) for k in row_groups}
        supply = [(v, 1.0) for v in by_class.values()]
        if d in origin:
            here = model.var(0.0, 1.0)
            model.add([(here, 1.0), (origin[d], -1.0)], -INF, 0.0)
            supply.append((here, 1.0))
        model.add([*supply, (need, -1.0)], 0.0, 0.0)
        for k, var in by_class.items():
            elsewhere = [(origin[o], -1.0) for o in members[k] if o != d]
            model.add([(var, 1.0), *elsewhere], -INF, 0.0)


def _add_shared_dataset(model: _Model, problem: Problem, flow: Flow, x: list[dict[int, int]]) -> None:
    rates = dataset_rates(problem, flow) * flow.size_gb
    needs: dict[int, int] = {}
    for c in flow.consumers:
        for site, var in x[c].items():
            if rates[site] <= 0:
                continue
            if site not in needs:
                needs[site] = model.var(float(rates[site]), 1.0)
            model.add([(var, 1.0), (needs[site], -1.0)], -INF, 0.0)


def _add_timing(model: _Model, problem: Problem, x: list[dict[int, int]]) -> int:
    """Start-time variables and precedence rows; returns the makespan variable."""
    n = len(problem.steps)
    start = [model.var() for _ in range(n)]
    finish_terms = [
        [(start[i], 1.0)] + [(v, duration(problem, i, s)) for s, v in x[i].items()] for i in range(n)
    ]
    makespan = model.var()
    for i in range(n):
        model.add([(makespan, 1.0)] + [(v, -c) for v, c in finish_terms[i]], 0.0, INF)
    for flow in problem.flows:
        wait = problem.transfer_hours(flow.size_gb)
        for c in flow.consumers:
            held = [(v, wait) for s, v in x[c].items() if s in flow.replicas or s == flow.origin]
            if flow.producer is None:
                if wait > 0:
                    model.add([(start[c], 1.0), *held], wait, INF)
                continue
            same = list(held)
            if wait > 0:
                for s in set(x[flow.producer]) & set(x[c]):
                    if s in flow.replicas:
                        continue
                    q = model.var(0.0, 1.0)
                    model.add([(q, 1.0), (x[flow.producer][s], -1.0)], -INF, 0.0)
                    model.add([(q, 1.0), (x[c][s], -1.0)], -INF, 0.0)
                    same.append((q, wait))
            producer_finish = [(v, -coef) for v, coef in finish_terms[flow.producer]]
            model.add([(start[c], 1.0), *producer_finish, *same], wait, INF)
    return makespan
