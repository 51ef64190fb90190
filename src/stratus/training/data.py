"""Each rank's share of a table, and endless shuffled mini-batches over it.

Sharding is strided (row i goes to rank i mod N), not in blocks: data written in time order would
otherwise give one site only the early weeks and another only the late ones, and their local models
(which drift apart between lowcomm syncs) would learn different worlds.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from stratus.training.cluster import Cluster

__all__ = ["batches", "shard"]


def shard(n_rows: int, cluster: Cluster | None) -> np.ndarray:
    """Row indices this rank trains on: all rows when not distributed, else every world_size-th row."""
    rows = np.arange(n_rows)
    return rows if cluster is None else rows[cluster.rank :: cluster.world_size]


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches of ``(x, y)`` as tensors, reshuffled each epoch, forever; the last short batch is dropped.

    Dropping it keeps every step's batch the same size, so steps cost the same and DDP's buckets fit.
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    if not 0 < batch_size <= len(x):
        raise ValueError(f"batch_size must be in 1..{len(x)} (the rows this rank holds), got {batch_size}")
    features, targets = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
    rng = np.random.default_rng(seed)
    while True:
        order = torch.from_numpy(rng.permutation(len(x)))
        for start in range(0, len(x) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            yield features[index], targets[index]
