"""A good first placement for the MILP: the tree DP, exact on a spanning forest of the real problem.

Keep, heaviest artifact first, every producer→reader edge that joins two trees (each as a single-reader
copy), and charge a dataset read by several steps in full to each reader. The result is tree-shaped, so
``solve_tree`` places it exactly in O(steps × sites²); every site it picks is feasible for its step, so
the placement is a feasible plan of the real problem, handed to HiGHS as its first incumbent.
"""

from __future__ import annotations

from dataclasses import replace

from stratus.planner.problem import Flow, Problem
from stratus.planner.terms import Terms, dataset_rates
from stratus.planner.tree import solve_tree

__all__ = ["forest_start"]


def forest_start(problem: Problem, terms: Terms) -> list[int]:
    """A feasible site per step: the exact optimum of the spanning-forest relaxation (see module doc)."""
    parent = list(range(len(problem.steps)))

    def root(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    kept: list[Flow] = []
    for flow in sorted(terms.step_flows, key=lambda f: -f.size_gb):
        assert flow.producer is not None
        for consumer in flow.consumers:
            a, b = root(flow.producer), root(consumer)
            if a != b:
                parent[a] = b
                kept.append(replace(flow, consumers=(consumer,)))
    unary = terms.unary.copy()
    for flow in terms.shared_datasets:
        rates = dataset_rates(problem, flow) * flow.size_gb
        for consumer in flow.consumers:
            unary[consumer] += rates
    forest = Terms(unary=unary, step_flows=tuple(kept), shared_datasets=(), fixed_cost=terms.fixed_cost)
    return solve_tree(problem, forest)
