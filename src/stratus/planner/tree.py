"""Exact dynamic programming for pipelines whose step graph is a forest (chains, merge trees).

When every artifact has at most one reader and the producer–reader graph has no undirected cycle, the
cost is a sum of unary and pairwise terms on a tree, and min-sum message passing is exact in
O(steps × sites²) — far faster than any integer program.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stratus.planner.problem import Problem
from stratus.planner.terms import Terms

__all__ = ["solve_tree", "tree_shaped"]

PairCosts = dict[tuple[int, int], npt.NDArray[np.float64]]


def tree_shaped(problem: Problem, terms: Terms) -> bool:
    """True when the DP is exact: single readers only and a forest of producer–reader edges."""
    if terms.shared_datasets or any(len(f.consumers) > 1 for f in terms.step_flows):
        return False
    parent = list(range(len(problem.steps)))

    def root(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    edges = {(f.producer, f.consumers[0]) for f in terms.step_flows if f.producer is not None}
    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra == rb:
            return False
        parent[ra] = rb
    return True


def solve_tree(problem: Problem, terms: Terms) -> list[int]:
    """The cost-optimal site per step; requires ``tree_shaped(problem, terms)``."""
    n = len(problem.steps)
    pairs: PairCosts = {}
    for flow in terms.step_flows:
        assert flow.producer is not None
        key = (flow.producer, flow.consumers[0])
        cost = problem.pair_rates(flow) * flow.size_gb
        pairs[key] = pairs[key] + cost if key in pairs else cost
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for a, b in pairs:
        neighbours[a].append(b)
        neighbours[b].append(a)

    assignment = [-1] * n
    visited = [False] * n
    for start in range(n):
        if visited[start]:
            continue
        order, parent_of = _walk(start, neighbours, visited)
        table: dict[int, npt.NDArray[np.float64]] = {}
        choice: dict[int, npt.NDArray[np.intp]] = {}
        for v in reversed(order):
            total = terms.unary[v].copy()
            for u in neighbours[v]:
                if parent_of.get(u) == v:
                    edge = _edge(pairs, v, u)  # [site of v, site of u]
                    scores = edge + table[u][None, :]
                    choice[u] = np.argmin(scores, axis=1)
                    total += scores[np.arange(len(total)), choice[u]]
            table[v] = total
        assignment[start] = int(np.argmin(table[start]))
        for v in order[1:]:
            assignment[v] = int(choice[v][assignment[parent_of[v]]])
    return assignment


def _walk(start: int, neighbours: list[list[int]], visited: list[bool]) -> tuple[list[int], dict[int, int]]:
    order = [start]
    parent_of: dict[int, int] = {}
    visited[start] = True
    stack = [start]
    while stack:
        v = stack.pop()
        for u in neighbours[v]:
            if not visited[u]:
                visited[u] = True
                parent_of[u] = v
                order.append(u)
                stack.append(u)
    return order, parent_of


def _edge(pairs: PairCosts, v: int, u: int) -> npt.NDArray[np.float64]:
    """Pair costs indexed ``[site of v, site of u]`` whichever of the two produces the artifact."""
    if (v, u) in pairs:
        return pairs[(v, u)]
    return pairs[(u, v)].T
