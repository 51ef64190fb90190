"""The anchor for federated training: the same model trained centrally on the union of all sites' data.

It reads every site's file in one process, which residency forbids in production: it exists so a
benchmark can state what federation costs ("seconds per round, overhead over local training") and what
it loses in quality, measured against identical code and settings.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stratus.training.federated.app.stratus_fl.model import (
    LinearModel,
    TrainSettings,
    auc,
    feature_stats,
    load_site,
    scaler_from_stats,
    site_seed,
    train_sgd,
)

__all__ = ["BaselineResult", "local_baseline"]


@dataclass(frozen=True)
class BaselineResult:
    """The central model, its test AUC on the union of test rows, and where the time went."""

    model: LinearModel
    test_auc: float
    load_seconds: float
    train_seconds: float

    @property
    def seconds(self) -> float:
        """Load plus train: what the federated run's wall clock replaces."""
        return self.load_seconds + self.train_seconds


def local_baseline(
    data_paths: Sequence[Path | str],
    *,
    epochs: int,
    settings: TrainSettings | None = None,
    seed: int = 0,
) -> BaselineResult:
    """Train on all rows of all ``data_paths`` for ``epochs`` epochs (use rounds × local epochs to match a
    federated run), standardised with the pooled statistics exactly as the federated run does."""
    if not data_paths:
        raise ValueError("local_baseline needs at least one data path")
    settings = settings or TrainSettings()
    started = time.perf_counter()
    sites = [load_site(p) for p in data_paths]
    columns = {s.feature_columns for s in sites}
    if len(columns) != 1:
        raise ValueError(f"data files disagree on feature columns: {sorted(columns)}")
    x_train = np.vstack([s.x_train for s in sites])
    y_train = np.concatenate([s.y_train for s in sites])
    x_test = np.vstack([s.x_test for s in sites])
    y_test = np.concatenate([s.y_test for s in sites])
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    mean, scale = scaler_from_stats(len(x_train), *feature_stats(x_train))
    model = LinearModel.initial(columns.pop(), mean, scale)
    model = train_sgd(
        model,
        x_train,
        y_train,
        TrainSettings(epochs, settings.learning_rate, settings.batch_size, settings.l2),
        site_seed(seed, 0, "central"),
    )
    train_seconds = time.perf_counter() - started
    return BaselineResult(model, auc(y_test, model.predict_proba(x_test)), load_seconds, train_seconds)
