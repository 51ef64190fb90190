"""A proven lower bound on the cheapest plan, cheap enough for thousands of steps: dual decomposition.

The plan's cost is at least that of a *pairwise* relaxation: every step's unary cost, and for each
artifact read by steps ``c1..cm`` the mean over its readers of the producer→reader copy price (the copies
to distinct sites cost at least their maximum, which is at least their mean); a dataset read by several
steps likewise charges each reader its mean share. Split the producer–reader edges into forests and each
step's unary cost among the forests (shares ``λ`` that sum to the cost): the sum of each forest's exact
minimum (the tree DP) is at most the relaxation's minimum, whatever ``λ`` is. Subgradient steps on ``λ``
raise the sum towards the relaxation's LP value. Every value it returns is a valid bound, so stopping
early only makes it weaker, never wrong.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stratus.planner.problem import Problem
from stratus.planner.terms import Terms, dataset_rates

__all__ = ["Bound", "lower_bound"]

# Subgradient iterations without a better bound before the step is halved, and the step scale at which
# the bound has stopped moving (at 1000 steps it is within 0.01% of its 20 s value after 5 s).
STALL_LIMIT = 5
MIN_SCALE = 1e-3

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Bound:
    """The proven lower bound, and the plans the forests chose last (feasible, for a caller to price)."""

    bound: float
    plans: tuple[list[int], ...]


@dataclass(frozen=True)
class _Forest:
    """One forest of the decomposition, as levels of (child, parent, edge cost [parent site, child site])."""

    roots: IntArray
    levels: tuple[tuple[IntArray, IntArray, FloatArray], ...]  # deepest first


def lower_bound(problem: Problem, terms: Terms, upper: float, time_budget_s: float) -> Bound:
    """A proven lower bound on the least total cost (``upper``: a known plan's cost, for step sizes)."""
    deadline = time.monotonic() + time_budget_s
    used = np.flatnonzero(np.isfinite(terms.unary).any(axis=0))
    unary = terms.unary[:, used].copy()
    for flow in terms.shared_datasets:
        share = (dataset_rates(problem, flow) * flow.size_gb)[used] / len(flow.consumers)
        for consumer in flow.consumers:
            unary[consumer] += share
    edges = _edges(problem, terms, used)
    forests = _forests(len(problem.steps), edges)
    if not forests:
        choice = np.argmin(unary, axis=1)
        return Bound(float(np.sum(np.min(unary, axis=1))), ([int(used[s]) for s in choice],))
    finite = np.isfinite(unary)
    base = np.where(finite, unary / len(forests), np.inf)
    shares = [np.zeros_like(unary) for _ in forests]
    best = -np.inf
    choices: list[IntArray] = []
    scale, stalled = 1.0, 0  # Polyak's step towards ``upper``, halved whenever the bound stops rising
    for _ in range(10_000):
        total = 0.0
        choices = []
        for forest, share in zip(forests, shares, strict=True):
            value, choice = _min_sum(forest, base + share)
            total += value
            choices.append(choice)
        if not np.isfinite(best) or total > best + 1e-9 * max(1.0, abs(best)):
            best, stalled = total, 0
        else:
            stalled += 1
            if stalled >= STALL_LIMIT:
                scale, stalled = scale / 2, 0
        if time.monotonic() > deadline or scale < MIN_SCALE or upper - best <= 1e-9 * max(1.0, abs(upper)):
            break
        # Subgradient: each forest's one-hot choice against the forests' mean; shares stay summing to 0.
        onehot = [np.zeros_like(unary) for _ in forests]
        rows = np.arange(len(problem.steps))
        for hot, choice in zip(onehot, choices, strict=True):
            hot[rows, choice] = 1.0
        mean = sum(onehot) / len(forests)
        gradients = [hot - mean for hot in onehot]
        norm = sum(float(np.sum(g * g)) for g in gradients)
        if norm == 0.0:
            break  # every forest chose the same plan: the relaxation is solved
        step = scale * (upper - total) / norm
        for share, gradient in zip(shares, gradients, strict=True):
            share += step * np.where(finite, gradient, 0.0)
    plans = tuple([int(used[s]) for s in choice] for choice in choices)
    return Bound(float(best), plans)


def _edges(problem: Problem, terms: Terms, used: IntArray) -> dict[tuple[int, int], FloatArray]:
    """Producer→reader copy prices ``[producer site, reader site]``, each at its mean share of a flow."""
    edges: dict[tuple[int, int], FloatArray] = {}
    for flow in terms.step_flows:
        assert flow.producer is not None
        cost = problem.pair_rates(flow)[np.ix_(used, used)] * (flow.size_gb / len(flow.consumers))
        for consumer in flow.consumers:
            key = (flow.producer, consumer)
            edges[key] = edges[key] + cost if key in edges else cost
    return edges


def _forests(n: int, edges: dict[tuple[int, int], FloatArray]) -> list[_Forest]:
    """Split the edges into forests, greedily: each takes every remaining edge that joins two of its trees."""
    left = list(edges)
    forests: list[_Forest] = []
    while left:
        parent = list(range(n))
        taken, rest = [], []
        for a, b in left:
            ra, rb = _root(parent, a), _root(parent, b)
            if ra == rb:
                rest.append((a, b))
            else:
                parent[ra] = rb
                taken.append((a, b))
        forests.append(_rooted(n, {e: edges[e] for e in taken}))
        left = rest
    return forests


def _root(parent: list[int], v: int) -> int:
    """Union-find's representative of ``v``, halving the path on the way."""
    while parent[v] != v:
        parent[v] = parent[parent[v]]
        v = parent[v]
    return v


def _rooted(n: int, edges: dict[tuple[int, int], FloatArray]) -> _Forest:
    neighbours: list[list[tuple[int, FloatArray]]] = [[] for _ in range(n)]
    for (a, b), cost in edges.items():
        neighbours[a].append((b, cost))  # seen from a: [site of a, site of b]
        neighbours[b].append((a, cost.T))
    depth = [-1] * n
    roots: list[int] = []
    by_depth: dict[int, list[tuple[int, int, FloatArray]]] = {}
    for start in range(n):
        if depth[start] >= 0:
            continue
        depth[start] = 0
        roots.append(start)
        stack = [start]
        while stack:
            v = stack.pop()
            for u, cost in neighbours[v]:
                if depth[u] < 0:
                    depth[u] = depth[v] + 1
                    by_depth.setdefault(depth[u], []).append((u, v, cost))
                    stack.append(u)
    levels = tuple(
        (
            np.array([u for u, _, _ in by_depth[d]], dtype=np.intp),
            np.array([v for _, v, _ in by_depth[d]], dtype=np.intp),
            np.stack([cost for _, _, cost in by_depth[d]]),
        )
        for d in sorted(by_depth, reverse=True)
    )
    return _Forest(roots=np.array(roots, dtype=np.intp), levels=levels)


def _min_sum(forest: _Forest, unary: FloatArray) -> tuple[float, IntArray]:
    """The forest's exact minimum over site assignments, and one assignment reaching it."""
    belief = unary.copy()
    picks: list[IntArray] = []
    for children, parents, cost in forest.levels:
        scores = cost + belief[children][:, None, :]  # [edge, parent site, child site]
        pick = np.argmin(scores, axis=2)
        picks.append(pick)
        np.add.at(belief, parents, np.take_along_axis(scores, pick[:, :, None], axis=2)[:, :, 0])
    choice = np.full(unary.shape[0], -1, dtype=np.intp)
    choice[forest.roots] = np.argmin(belief[forest.roots], axis=1)
    value = float(np.sum(belief[forest.roots, choice[forest.roots]]))
    for (children, parents, _cost), pick in zip(reversed(forest.levels), reversed(picks), strict=True):
        choice[children] = pick[np.arange(len(children)), choice[parents]]
    return value, choice
