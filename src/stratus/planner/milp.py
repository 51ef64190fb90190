"""Exact placement for any DAG as a mixed-integer program solved by HiGHS.

Kept small on purpose: one binary per (step, site) — offerings at a site only differ in price, so the
cheapest one stands for them all — and egress is linearised over *classes* of sites (see ``factor``),
not over every pair of sites, with the mass of a reader placed at the producer's own site kept apart.
Each producer–reader pair is a transportation problem between classes (``_add_transport``), which keeps
the LP relaxation close to the optimum (at 50 steps over 74 regions it is the optimum).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_array, csc_array

from stratus.errors import PlanError
from stratus.planner import highs
from stratus.planner.bound import lower_bound
from stratus.planner.dualbound import safe_dual_bound
from stratus.planner.evaluate import duration, evaluate
from stratus.planner.factor import Factored, factor_rates
from stratus.planner.local import improve
from stratus.planner.problem import Flow, Problem
from stratus.planner.terms import Terms, dataset_rates

__all__ = [
    "MAX_LP_VARIABLES",
    "MAX_MILP_VARIABLES",
    "LpRelaxation",
    "estimated_variables",
    "lp_relaxation",
    "method",
    "relaxation_bound",
    "solve_milp",
]

INF = float("inf")
# Sizes are ``estimated_variables``, counted without building the model. Past MAX_MILP_VARIABLES HiGHS's
# root LP (dual simplex) did not finish in 60 s (200-step layered DAG over 74 regions: 148,651 variables,
# 65 s for the LP alone), so there is no branch and bound: the plan is the LP's rounded solution or the
# improved warm start, with the LP relaxation's bound from PDLP (``dualbound``; 4.5 s on that LP).
MAX_MILP_VARIABLES = 100_000
# Past this PDLP runs to a loose tolerance (1000 steps, about 750,000 estimated: 17 s at kkt 1e-2, bound
# 0.06% below the LP's optimum, against 45 s at 1e-3 and 54 s at the default).
LOOSE_LP_VARIABLES = 400_000
LOOSE_KKT_TOLERANCE = 1e-2
# Past this no LP is built (the 1000-step LP peaked at 1.3 GB with the problem): the improved warm start
# gets the dual decomposition's proven bound (``bound``) instead.
MAX_LP_VARIABLES = 1_000_000
# Shares of the time limit: the LP relaxation before branch and bound (``LP_SHARE``) or without it
# (``LP_SHARE_WITHOUT_MILP``); the local search (``local.improve``) on a start; the decomposition's bound
# when nothing better was proven (``BOUND_SHARE``); local search before the decomposition alone.
LP_SHARE = 0.5
LP_SHARE_WITHOUT_MILP = 0.7
LOCAL_SHARE = 0.15
BOUND_SHARE = 0.1
LOCAL_SHARE_WITHOUT_LP = 0.5
# A plan within this relative distance of a proven bound is proven optimal (float noise in the sums).
PROVEN_TOLERANCE = 1e-9


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

    def arrays(self) -> highs.SparseModel:
        """The model as the arrays HiGHS takes."""
        n = len(self.cost)
        matrix = csc_array(coo_array((self.val, (self.row, self.col)), shape=(len(self.row_lb), n)))
        return highs.SparseModel(
            np.array(self.cost),
            np.array(self.integer),
            np.array(self.upper),
            matrix,
            np.array(self.row_lb),
            np.array(self.row_ub),
        )

    def solve(
        self,
        objective: list[float],
        time_limit: float,
        start: dict[int, float] | None = None,
        presolve: bool = True,
    ) -> tuple[npt.NDArray[np.float64], float | None]:
        """Values of every variable, and None when HiGHS proved them optimal, else its proven lower bound."""
        model = self.arrays().with_cost(np.array(objective))
        result = highs.run_highs(model, time_limit, start, presolve)
        if result.status == "Infeasible" and presolve:
            # HiGHS's presolve has called a feasible model infeasible (scipy 1.17's HiGHS did, on the time
            # objective's second solve capped at the makespan the first had just reached, on a 4-step
            # case hypothesis found). Every model here has a solution, so ask again without presolve.
            result = highs.run_highs(model, time_limit, start, presolve=False)
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
    priced_start = problem.objective == "cost" and start is not None
    chosen = method(problem, terms) if priced_start else "milp-highs"
    if chosen == "forest-dp-bound":
        assert start is not None
        return _bounded_start(problem, terms, start, time_limit)
    began = time.monotonic()
    relaxed_bound: float | None = None
    if priced_start:
        assert start is not None
        lp_share = LP_SHARE if chosen == "milp-highs" else LP_SHARE_WITHOUT_MILP
        start, relaxed_bound = _lp_rounded(problem, terms, start, time_limit, lp_share)
        cost = float(evaluate(problem, start).total_cost_usd)
        if relaxed_bound is not None and _gap(cost, relaxed_bound) == 0.0:
            return start, 0.0  # the LP's rounded solution meets its bound: optimal, no branching needed
        if chosen == "lp-bound":
            if relaxed_bound is None:  # PDLP ran out of time: the decomposition's bound instead
                left = max(time_limit - (time.monotonic() - began), time_limit * BOUND_SHARE)
                relaxed_bound = lower_bound(problem, terms, cost, left).bound
            return start, _gap(cost, relaxed_bound)
    highs_limit = time_limit - (time.monotonic() - began)
    highs_limit -= time_limit * BOUND_SHARE if priced_start and relaxed_bound is None else 0.0
    model, x = _cost_model(problem, terms)
    n = len(problem.steps)
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
    values, bound = model.solve(model.cost, highs_limit, warm, presolve=problem.objective == "cost")
    assignment = [max(x[i], key=lambda s: values[x[i][s]]) for i in range(n)]
    if bound is None and fastest_proven:
        return assignment, 0.0
    if not fastest_proven or bound is None:
        return assignment, None
    # HiGHS's own gap compares with its incumbent's objective, whose continuous variables may not be
    # tight yet; the plan's true price is what ``evaluate`` says.
    cost = float(evaluate(problem, assignment).total_cost_usd)
    if priced_start:
        assert start is not None
        start_cost = float(evaluate(problem, start).total_cost_usd)
        if start_cost < cost:
            assignment, cost = start, start_cost
        # HiGHS stopped before proving; its bound may be weak or none (the root LP unfinished), and the
        # LP's or the dual decomposition's is proven too: keep the better.
        if relaxed_bound is None:
            relaxed_bound = lower_bound(problem, terms, cost, time_limit * BOUND_SHARE).bound
        bound = max(bound, relaxed_bound)
    return assignment, _gap(cost, bound)


def _cost_model(problem: Problem, terms: Terms) -> tuple[_Model, list[dict[int, int]]]:
    """The cost MILP: a binary per (step, feasible site), one site per step, and every copy's price."""
    model = _Model()
    x: list[dict[int, int]] = []
    for i in range(len(problem.steps)):
        x.append({s: model.var(float(terms.unary[i, s]), 1.0, True) for s in problem.feasible_sites(i)})
        model.add([(v, 1.0) for v in x[i].values()], 1.0, 1.0)
    factor_cache = _factors(problem, terms)
    for flow in terms.step_flows:
        _add_step_flow(model, problem, flow, x, factor_cache[flow.replicas])
    for flow in terms.shared_datasets:
        _add_shared_dataset(model, problem, flow, x)
    return model, x


def method(problem: Problem, terms: Terms) -> str:
    """How ``solve_milp`` handles a cost problem given a start, by its estimated size: ``milp-highs``
    (the LP relaxation, then HiGHS's branch and bound unless the LP proved the plan), ``lp-bound`` (the
    best of the LP's rounded solution and the start, bounded by the LP) or ``forest-dp-bound`` (the
    improved start, bounded by the decomposition)."""
    size = estimated_variables(problem, terms)
    if size > MAX_LP_VARIABLES:
        return "forest-dp-bound"
    return "lp-bound" if size > MAX_MILP_VARIABLES else "milp-highs"


def relaxation_bound(problem: Problem, terms: Terms, time_limit: float = 60.0) -> float:
    """The cost MILP's LP relaxation (every binary allowed fractional): a proven lower bound, and how
    tight the formulation is (at or near the optimum, branch and bound has little left to do)."""
    model, _x = _cost_model(problem, terms)
    model.integer = [0] * len(model.integer)
    values, _bound = model.solve(model.cost, time_limit)
    return float(np.dot(model.cost, values))


def estimated_variables(problem: Problem, terms: Terms) -> int:
    """How many variables the MILP would have, counted without building it (see ``MAX_MILP_VARIABLES``)."""
    factors = _factors(problem, terms)
    total = sum(len(c) for c in problem.candidates)
    for flow in terms.step_flows:
        assert flow.producer is not None
        fac = factors[flow.replicas]
        rows = len({int(fac.rows[o]) for o in problem.candidates[flow.producer]})
        reached: set[int] = set()
        for c in flow.consumers:
            total += rows * len({int(fac.cols[d]) for d in problem.candidates[c]})
            reached.update(problem.candidates[c])
        if len(flow.consumers) > 1:
            total += len(reached) * (rows + 1)
    return total


def _factors(problem: Problem, terms: Terms) -> dict[tuple[int, ...], Factored]:
    """The egress classes of each distinct set of replicas (they change which sites hold a copy)."""
    factors: dict[tuple[int, ...], Factored] = {}
    for flow in terms.step_flows:
        if flow.replicas not in factors:
            factors[flow.replicas] = factor_rates(problem.pair_rates(flow), problem.site_labels)
    return factors


def _bounded_start(
    problem: Problem, terms: Terms, start: list[int], time_limit: float
) -> tuple[list[int], float | None]:
    """For a model too large for HiGHS in the time: the start improved by local search, or a cheaper plan
    the decomposition met, with the decomposition's proven bound."""
    began = time.monotonic()
    start = improve(problem, terms, start, time_limit * LOCAL_SHARE_WITHOUT_LP)
    cost = float(evaluate(problem, start).total_cost_usd)
    found = lower_bound(problem, terms, cost, time_limit - (time.monotonic() - began))
    best, best_cost = start, cost
    for candidate in found.plans:
        price = float(evaluate(problem, candidate).total_cost_usd)
        if price < best_cost:
            best, best_cost = candidate, price
    return best, _gap(best_cost, found.bound)


def _lp_rounded(
    problem: Problem, terms: Terms, start: list[int], time_limit: float, lp_share: float
) -> tuple[list[int], float | None]:
    """The LP relaxation's proven bound and the cheaper of ``start`` and the LP's solution rounded, both
    improved by local search; when PDLP does not finish in its share of the time, no bound and ``start``
    improved."""
    loose = estimated_variables(problem, terms) > LOOSE_LP_VARIABLES
    relaxed = lp_relaxation(problem, terms, time_limit * lp_share, LOOSE_KKT_TOLERANCE if loose else None)
    if relaxed is None:
        return improve(problem, terms, start, time_limit * LOCAL_SHARE), None
    if relaxed.rounded != start:
        rounded = improve(problem, terms, relaxed.rounded, time_limit * LOCAL_SHARE)
        if evaluate(problem, rounded).total_cost_usd < evaluate(problem, start).total_cost_usd:
            return rounded, relaxed.bound
    return improve(problem, terms, start, time_limit * LOCAL_SHARE), relaxed.bound


@dataclass(frozen=True)
class LpRelaxation:
    """The cost MILP's LP relaxation: a proven lower bound, and each step at its largest LP value's site."""

    bound: float
    rounded: list[int]


def lp_relaxation(
    problem: Problem, terms: Terms, time_limit: float = 60.0, kkt_tolerance: float | None = None
) -> LpRelaxation | None:
    """Solve the LP relaxation with HiGHS's PDLP; its row prices become a proven bound by weak duality
    (``dualbound``) however loose PDLP's tolerance. None when PDLP stops without a solution. On the
    200-step DAG over 74 regions 197 of 200 steps are integral in the LP, and the rounded plan costs the
    bound: proven optimal."""
    began = time.monotonic()
    model, x = _cost_model(problem, terms)
    a = model.arrays()
    limit = max(time_limit - (time.monotonic() - began), 0.0)  # building the model counts too
    outcome = highs.run_lp(a, limit, kkt_tolerance)
    if outcome.row_prices is None or outcome.values is None:
        return None
    values = outcome.values
    bound = safe_dual_bound(a.cost, a.upper, a.matrix, a.row_lower, a.row_upper, outcome.row_prices)
    rounded = [max(x[i], key=lambda site: values[x[i][site]]) for i in range(len(problem.steps))]
    return LpRelaxation(bound=bound, rounded=rounded)


def _gap(cost: float, bound: float) -> float | None:
    """Proven relative gap of a plan costing ``cost``; None when the bound says nothing useful."""
    if bound <= 0 or cost <= 0:
        return None
    if cost - bound <= PROVEN_TOLERANCE * cost:
        return 0.0  # the bound meets the plan: proven optimal, to HiGHS's own tolerance
    return (cost - bound) / cost


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
    """One reader: a transportation problem from the producer's origin classes to the reader's column
    classes, priced, with the mass at one same site taken out of it (that copy is free)."""
    assert flow.producer is not None
    _add_transport(model, fac, x[flow.producer], x[flow.consumers[0]], flow.size_gb)


def _add_transport(
    model: _Model, fac: Factored, origin: dict[int, int], reader: dict[int, int], size: float | None
) -> dict[tuple[int, int], int]:
    """``pair[k, j]``: the producer sits in origin class k and the reader at another site of column
    class j; ``same[d]``: both sit at site d. Their sums per j are the reader's mass in class j and per
    k the producer's mass in class k, so the two placements are coupled as a joint distribution over
    classes, which the LP cannot split freely (a per-destination bound alone lets every destination
    take its cheapest class: 50 steps 1.4% below the optimum against 0% with this coupling).
    Priced at ``size`` GB when given; unpriced pairs only bound a multi-reader flow's copies."""
    rows = sorted({int(fac.rows[o]) for o in origin})
    cols = sorted({int(fac.cols[d]) for d in reader})
    price = 0.0 if size is None else size
    pair = {(k, j): model.var(float(fac.table[k, j]) * price, 1.0) for k in rows for j in cols}
    same: dict[int, int] = {}
    for d in set(origin) & set(reader):
        if fac.table[fac.rows[d], fac.cols[d]] > 0:  # else pair[k, j] carries it at no cost
            same[d] = model.var(0.0, 1.0)
            model.add([(same[d], 1.0), (origin[d], -1.0)], -INF, 0.0)
            model.add([(same[d], 1.0), (reader[d], -1.0)], -INF, 0.0)
    for j in cols:
        here = [(v, 1.0) for d, v in same.items() if fac.cols[d] == j]
        mass = [(v, -1.0) for d, v in reader.items() if fac.cols[d] == j]
        model.add([(pair[k, j], 1.0) for k in rows] + here + mass, 0.0, 0.0)
    for k in rows:
        here = [(v, 1.0) for d, v in same.items() if fac.rows[d] == k]
        mass = [(v, -1.0) for o, v in origin.items() if fac.rows[o] == k]
        model.add([(pair[k, j], 1.0) for j in cols] + here + mass, 0.0, 0.0)
    return pair


def _add_many_readers(model: _Model, flow: Flow, x: list[dict[int, int]], fac: Factored) -> None:
    """Several readers: every site that needs a copy takes it from the producer's class, or for free
    when the producer is that site. Per needed site rather than per class of sites: counting sites per
    class needs a big-M whose LP bound HiGHS cannot close (measured: 50 steps never proven vs 213 s)."""
    assert flow.producer is not None
    origin, size = x[flow.producer], flow.size_gb
    needs = _needs(model, flow, x)
    row_groups = sorted({int(fac.rows[o]) for o in origin})
    members = {k: [o for o in origin if fac.rows[o] == k] for k in row_groups}
    copies: dict[tuple[int, int], int] = {}
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
            copies[d, k] = var
    for c in flow.consumers:
        # Each reader alone is a single-reader flow: its copies from class k into class j are at least
        # the transport's pair[k, j] (see ``_add_transport``), which ties the destinations together.
        pair = _add_transport(model, fac, origin, x[c], None)
        for (k, j), var in pair.items():
            if fac.table[k, j] > 0:
                into = [(copies[d, k], 1.0) for d in x[c] if fac.cols[d] == j]
                model.add([*into, (var, -1.0)], 0.0, INF)


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
