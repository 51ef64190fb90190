"""Exact dominance pruning: drop a site that another site beats, or ties, for every step and every copy.

Site ``s`` is dominated by site ``t`` when moving *every* step placed at ``s`` to ``t`` at once can never
raise the cost of any plan:

- every step that may run at ``s`` may run at ``t``, for no more (``unary``: compute, the replicas it
  writes, the datasets only it reads);
- every copy into ``t`` costs no more than the same copy into ``s``, from every other site and for
  every artifact (its replicas make holders, so each artifact's rates are compared as the solver sees
  them), and every copy out of ``t`` no more than out of ``s``; datasets read by several steps cost no
  more to bring to ``t``.

Moving all of ``s``'s steps together keeps steps that shared ``s`` together (no new copies between them),
so the cost of the moved plan is at most the original's term by term. Dropping ``s`` therefore never
changes the optimum's cost; a chain (``s`` by ``t``, ``t`` by ``u``) composes. Ties are broken by keeping
the first site in platform order. Only for ``objective: cost``: with ``time``, where a step waits for a
copy depends on which sites hold it, which this comparison does not see.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from stratus.planner.problem import Problem
from stratus.planner.terms import Terms, dataset_rates

__all__ = ["Pruned", "prune_dominated"]

# Float noise in summed prices must not make a tie look like a win or a loss.
EPSILON = 1e-9


@dataclass(frozen=True)
class Pruned:
    """The problem with dominated sites removed from every step's candidates, and why each went."""

    problem: Problem
    terms: Terms
    reasons: dict[str, str]  # site → "dominated by T: ..."


def prune_dominated(problem: Problem, terms: Terms) -> Pruned:
    """Remove every site another kept site dominates (see the module docstring); pure."""
    if problem.objective != "cost" or len(problem.sites) < 2:
        return Pruned(problem, terms, {})
    n_sites = len(problem.sites)
    unary = terms.unary
    pair_matrices = _pair_matrices(problem, terms)
    vectors = [dataset_rates(problem, f) for f in terms.shared_datasets]
    # A site no step may use needs no pruning: the solver never sees it.
    used: npt.NDArray[np.bool_] = np.asarray(np.isfinite(unary).any(axis=0))
    removed: dict[int, int] = {}
    for s in range(n_sites):
        if not used[s]:
            continue
        ok = _dominators(s, unary, pair_matrices, vectors)
        ok[s] = False
        ok &= used
        # A removed site cannot stand in: of two equal sites the first one visited goes, the other stays.
        kept = [int(t) for t in np.flatnonzero(ok) if int(t) not in removed]
        if kept:
            removed[s] = kept[0]
    if not removed:
        return Pruned(problem, terms, {})
    candidates = tuple(
        {site: c for site, c in per.items() if site not in removed} for per in problem.candidates
    )
    kept_unary = unary.copy()
    kept_unary[:, list(removed)] = np.inf
    reasons = {
        problem.sites[s]: (
            f"dominated by {problem.sites[t]}: no step costs less here and no copy into or out of it is "
            "cheaper (exact pruning: the optimum is unchanged)"
        )
        for s, t in removed.items()
    }
    return Pruned(replace(problem, candidates=candidates), replace(terms, unary=kept_unary), reasons)


def _dominators(
    s: int,
    unary: npt.NDArray[np.float64],
    pairs: list[npt.NDArray[np.float64]],
    vectors: list[npt.NDArray[np.float64]],
) -> npt.NDArray[np.bool_]:
    """Boolean per site t: t dominates s."""
    own = unary[:, s]
    rows = np.isfinite(own)
    ok: npt.NDArray[np.bool_] = np.all(unary[rows] <= own[rows, None] + EPSILON, axis=0)
    others = np.ones(unary.shape[1], dtype=bool)
    others[s] = False
    for rates in pairs:
        if not ok.any():
            break
        out_ok = np.all((rates <= rates[s][None, :] + EPSILON)[:, others], axis=1)
        in_ok = np.all((rates <= rates[:, s][:, None] + EPSILON)[others, :], axis=0)
        ok &= out_ok & in_ok
    for vector in vectors:
        ok &= vector <= vector[s] + EPSILON
    return ok


def _pair_matrices(problem: Problem, terms: Terms) -> list[npt.NDArray[np.float64]]:
    """Each distinct per-GB rate matrix a coupled artifact is priced with (one per set of replicas)."""
    seen: dict[tuple[int, ...], npt.NDArray[np.float64]] = {}
    for flow in terms.step_flows:
        if flow.replicas not in seen:
            seen[flow.replicas] = problem.pair_rates(flow)
    return list(seen.values())
