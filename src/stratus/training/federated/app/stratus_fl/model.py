"""The model every site trains: logistic regression in numpy, on standardised float32 features.

Kept in numpy (no torch) so a SuperNode needs only numpy and pyarrow, and so the coordinator can average
weights exactly. The same code trains the central baseline, so "federated vs local" compares protocol cost,
not two implementations.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq

__all__ = [
    "LABEL",
    "SPLIT",
    "LinearModel",
    "SiteData",
    "TrainSettings",
    "auc",
    "feature_stats",
    "load_site",
    "log_loss",
    "scaler_from_stats",
    "site_seed",
    "train_sgd",
]

LABEL = "is_fraud"
SPLIT = "split"
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SiteData:
    """One site's rows, already split: features as float64 for stable sums, labels as 0/1 floats."""

    path: str
    feature_columns: tuple[str, ...]
    x_train: FloatArray
    y_train: FloatArray
    x_test: FloatArray
    y_test: FloatArray


def load_site(path: str | Path) -> SiteData:
    """Read one parquet file of features: columns named by its ``feature_columns`` schema metadata.

    Raises ``FileNotFoundError`` or ``ValueError`` naming the path and what is wrong with it, because the
    coordinator can only report what the site tells it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data path {path} does not exist or is not a file")
    table = pq.read_table(path)
    metadata = table.schema.metadata or {}
    raw = metadata.get(b"feature_columns")
    if not raw:
        raise ValueError(f"{path}: schema metadata has no 'feature_columns' list")
    features = tuple(name for name in raw.decode().split(",") if name)
    missing = [name for name in (*features, LABEL, SPLIT) if name not in table.column_names]
    if missing:
        raise ValueError(f"{path}: columns {missing} are missing")
    x = np.column_stack([table[name].to_numpy(zero_copy_only=False) for name in features]).astype(np.float64)
    y = table[LABEL].to_numpy(zero_copy_only=False).astype(np.float64)
    split = np.asarray(table[SPLIT].to_pylist(), dtype=object)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{path}: features contain NaN or infinite values")
    train, test = split == "train", split == "test"
    if not train.any():
        raise ValueError(f"{path}: no rows with split == 'train'")
    return SiteData(str(path.resolve()), features, x[train], y[train], x[test], y[test])


def feature_stats(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-feature sum and sum of squares: what a site shares so the coordinator can standardise globally
    (aggregates of whole columns, never rows)."""
    return x.sum(axis=0), np.square(x).sum(axis=0)


def scaler_from_stats(count: float, total: FloatArray, total_sq: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Global mean and scale from summed site statistics; constant columns get scale 1 (no division by 0)."""
    mean = total / count
    var = np.maximum(total_sq / count - np.square(mean), 0.0)
    scale = np.sqrt(var)
    return mean, np.where(scale > 1e-12, scale, 1.0)


@dataclass(frozen=True)
class TrainSettings:
    """Local SGD settings; the same values drive the federated clients and the central baseline."""

    epochs: int = 5
    learning_rate: float = 0.1
    batch_size: int = 256
    l2: float = 1e-4


@dataclass(frozen=True)
class LinearModel:
    """A logistic-regression model with its input standardisation: ``weights[:-1]`` are coefficients on
    ``(x - mean) / scale`` and ``weights[-1]`` is the intercept."""

    feature_columns: tuple[str, ...]
    mean: FloatArray
    scale: FloatArray
    weights: FloatArray

    @classmethod
    def initial(cls, feature_columns: Sequence[str], mean: FloatArray, scale: FloatArray) -> LinearModel:
        """All-zero weights: every site starts from the same point, so FedAvg's first average is sound."""
        return cls(tuple(feature_columns), mean, scale, np.zeros(len(feature_columns) + 1))

    def with_weights(self, weights: FloatArray) -> LinearModel:
        """The same standardisation with new weights."""
        return LinearModel(self.feature_columns, self.mean, self.scale, np.asarray(weights, dtype=np.float64))

    def decision(self, x: FloatArray) -> FloatArray:
        """Log-odds of fraud for raw feature rows."""
        z: FloatArray = ((x - self.mean) / self.scale) @ self.weights[:-1] + self.weights[-1]
        return z

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Probability of fraud for raw feature rows."""
        return _sigmoid(self.decision(x))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the model must outlive the Flower processes that made it."""
        return {
            "feature_columns": list(self.feature_columns),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearModel:
        """Inverse of :meth:`to_json`."""
        return cls(
            tuple(data["feature_columns"]),
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["scale"], dtype=np.float64),
            np.asarray(data["weights"], dtype=np.float64),
        )

    def save(self, path: Path) -> None:
        """Write :meth:`to_json` to ``path``."""
        path.write_text(json.dumps(self.to_json()))


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0)))
    return out


def site_seed(seed: int, server_round: int, site: str) -> int:
    """A shuffle seed that differs per site and round but is reproducible from the run config."""
    return (seed * 1_000_003 + server_round * 7_919 + zlib.crc32(site.encode())) % 2**32


def train_sgd(
    model: LinearModel, x: FloatArray, y: FloatArray, settings: TrainSettings, seed: int
) -> LinearModel:
    """Mini-batch SGD on the log loss with L2, starting from ``model``'s weights; returns the new model."""
    xs = np.hstack([(x - model.mean) / model.scale, np.ones((len(x), 1))])
    w = model.weights.copy()
    rng = np.random.default_rng(seed)
    penalty = np.ones_like(w)
    penalty[-1] = 0.0  # the intercept is not shrunk
    for _ in range(settings.epochs):
        order = rng.permutation(len(xs))
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            error = _sigmoid(xs[batch] @ w) - y[batch]
            grad = xs[batch].T @ error / len(batch) + settings.l2 * penalty * w
            w -= settings.learning_rate * grad
    return model.with_weights(w)


def log_loss(y: FloatArray, p: FloatArray) -> float:
    """Mean binary cross-entropy; 0 for no rows."""
    if len(y) == 0:
        return 0.0
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))


def auc(y: FloatArray, score: FloatArray) -> float:
    """ROC AUC by the rank-sum formula with tied scores sharing their mean rank; NaN without both classes."""
    positives = int(np.sum(y == 1))
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mean_rank = ends - (counts - 1) / 2.0  # 1-based mean rank of each distinct score
    rank_sum = float(np.sum(mean_rank[inverse][y == 1]))
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)
