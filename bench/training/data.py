"""The benchmark's data: the fraud demo's features, made deterministically, written once per run.

Every case trains on the same file (the demo's pipeline up to ``preprocess``: ``make_table`` → validate →
dedupe → ``build_features``), so steps/s, loss and AUC differ only by how the ranks communicate. The
Flower case gets the same rows split into two sites (every other row), so each site keeps the demo's
time-based train/test split.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from bench.planner.runner import REPO

__all__ = ["EXAMPLE", "Dataset", "make_dataset"]

EXAMPLE = REPO / "examples" / "fraud-detection"
SEED = 7  # the demo's default (fraud_steps.make_transactions)
TEST_FRACTION = 0.2  # the demo's default (fraud_steps.preprocess)


@dataclass(frozen=True)
class Dataset:
    """Where the features are, and their shape (for the report)."""

    features: Path  # all rows: the DDP cases' input
    sites: dict[str, Path]  # the same rows in two halves: the Flower case's inputs
    rows: int
    train_rows: int
    test_rows: int
    n_features: int
    fraud_rate: float


def make_dataset(folder: Path, rows: int) -> Dataset:
    """Make ``rows`` transactions with the demo's seed, their features, and the two site halves."""
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    from fraud_data import make_table
    from fraud_features import FEATURES, build_features, dedupe, validate

    folder.mkdir(parents=True, exist_ok=True)
    table = build_features(dedupe(validate(make_table(rows, SEED))), TEST_FRACTION)
    features = folder / "features.parquet"
    pq.write_table(table, features)
    sites = {}
    for i, site in enumerate(("eu-west", "eu-central")):
        (folder / site).mkdir(exist_ok=True)
        sites[site] = folder / site / "features.parquet"
        pq.write_table(table.take(np.arange(i, table.num_rows, 2)), sites[site])
    test = table["split"].to_numpy(zero_copy_only=False) == "test"
    labels = table["is_fraud"].to_numpy()
    return Dataset(
        features=features,
        sites=sites,
        rows=table.num_rows,
        train_rows=int((~test).sum()),
        test_rows=int(test.sum()),
        n_features=len(FEATURES),
        fraud_rate=float(labels.mean()),
    )
