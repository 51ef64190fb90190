"""The cost model split into the shapes solvers like: per-step unary costs and per-artifact pair costs.

A step's own compute, the replicas it must write and the datasets only it reads depend on its site
alone (unary). An artifact read by other steps costs egress that depends on where its producer and its
readers sit (pair terms); a dataset read by several steps is charged once per site that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stratus.planner.problem import Flow, Problem

__all__ = ["Terms", "split_terms"]


@dataclass(frozen=True)
class Terms:
    """``unary[i, s]`` (inf where infeasible), coupled step artifacts, and datasets shared by readers."""

    unary: npt.NDArray[np.float64]
    step_flows: tuple[Flow, ...]  # produced by a step and read by at least one step
    shared_datasets: tuple[Flow, ...]  # datasets read by two or more steps
    fixed_cost: float  # cost no placement can change (none today; kept explicit for clarity)


def dataset_rates(problem: Problem, flow: Flow) -> npt.NDArray[np.float64]:
    """usd/GB to bring a dataset to each site from its cheapest holder (0 where it already is)."""
    assert flow.origin is not None
    rates: npt.NDArray[np.float64] = np.minimum(
        problem.egress.usd_per_gb[flow.origin], problem.holder_rates(flow)
    )
    rates[flow.origin] = 0.0
    return rates


def split_terms(problem: Problem) -> Terms:
    """Decompose the cost model; ``evaluate`` of any assignment equals the sum of its terms."""
    n, s = len(problem.steps), len(problem.sites)
    unary = np.full((n, s), np.inf)
    for i in range(n):
        for site, cost in problem.compute_cost(i).items():
            unary[i, site] = cost
    step_flows: list[Flow] = []
    shared: list[Flow] = []
    egress = problem.egress.usd_per_gb
    for flow in problem.flows:
        if flow.producer is not None:
            for replica in flow.replicas:
                writes = egress[:, replica] * flow.size_gb
                unary[flow.producer] += writes  # zero on the diagonal: writing to itself is free
            if flow.consumers:
                step_flows.append(flow)
        elif len(flow.consumers) == 1:
            unary[flow.consumers[0]] += dataset_rates(problem, flow) * flow.size_gb
        elif len(flow.consumers) > 1:
            shared.append(flow)
    return Terms(unary=unary, step_flows=tuple(step_flows), shared_datasets=tuple(shared), fixed_cost=0.0)
