"""The GPU-training example's steps, on a small synthetic sample: make events, prepare, train, evaluate,
export, stage for serving.

The planner prices the production sizes the pipeline declares (400 GB of events, 8 h on 8×A100-80GB);
these functions do the same work in miniature with numpy (a logistic click-through model), so
`stratus run` on the embedded local default finishes in seconds. Each takes only a StepContext.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from stratus.step import StepContext

FEATURES = 16


def _save(path: Any, **arrays: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a bare path
        np.savez(f, **arrays)


def make_events(ctx: StepContext) -> dict[str, Any]:
    """The ``events`` dataset's maker: impressions with a click label from a hidden logistic model."""
    rows, seed = int(ctx.params.get("rows", 20_000)), int(ctx.params.get("seed", 11))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)) * rng.uniform(0.5, 3.0, size=FEATURES) + rng.normal(size=FEATURES)
    truth = rng.normal(size=FEATURES)
    logits = (x - x.mean(axis=0)) / x.std(axis=0) @ truth - 1.5
    clicks = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logits))).astype(np.int8)
    _save(ctx.output("events"), x=x.astype(np.float32), y=clicks)
    ctx.log(f"made {rows} impressions, click rate {clicks.mean():.3f}, seed {seed}")
    return {"rows": rows, "click_rate": round(float(clicks.mean()), 4)}


def prepare(ctx: StepContext) -> dict[str, Any]:
    """Standardise the features and split the last 20% off as the test set: the training shards."""
    data = np.load(ctx.input("events"))
    x, y = data["x"], data["y"]
    cut = int(len(x) * 0.8)
    mean, std = x[:cut].mean(axis=0), x[:cut].std(axis=0) + 1e-6
    z = ((x - mean) / std).astype(np.float32)
    _save(
        ctx.output("shards"),
        x_train=z[:cut],
        y_train=y[:cut],
        x_test=z[cut:],
        y_test=y[cut:],
        mean=mean,
        std=std,
    )
    ctx.log(f"{cut} train rows, {len(x) - cut} test rows")
    return {"train_rows": cut, "test_rows": len(x) - cut}


def train(ctx: StepContext) -> dict[str, Any]:
    """Full-batch gradient descent on the logistic loss (a stand-in for the 8-GPU job)."""
    data = np.load(ctx.input("shards"))
    x, y = data["x_train"].astype(np.float64), data["y_train"].astype(np.float64)
    w, b = np.zeros(x.shape[1]), 0.0
    rate, steps = float(ctx.params.get("learning_rate", 0.5)), int(ctx.params.get("steps", 300))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        w -= rate * (x.T @ (p - y)) / len(y)
        b -= rate * float(np.mean(p - y))
    p = np.clip(1 / (1 + np.exp(-(x @ w + b))), 1e-9, 1 - 1e-9)
    loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    _save(ctx.output("checkpoint"), w=w, b=np.array([b]), mean=data["mean"], std=data["std"])
    ctx.log(f"{steps} steps, final training loss {loss:.4f}")
    return {"steps": steps, "loss": round(loss, 5)}


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC as the probability a random click outscores a random non-click (rank statistic)."""
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def evaluate(ctx: StepContext) -> dict[str, Any]:
    """ROC-AUC of the checkpoint on the held-out shard."""
    model, data = np.load(ctx.input("checkpoint")), np.load(ctx.input("shards"))
    scores = data["x_test"] @ model["w"] + model["b"][0]
    auc = _auc(scores, data["y_test"].astype(np.int64))
    ctx.output("metrics").write_text(json.dumps({"roc_auc": round(auc, 5)}), encoding="utf-8")
    ctx.log(f"test ROC-AUC {auc:.4f}")
    return {"roc_auc": round(auc, 5)}


def export(ctx: StepContext) -> dict[str, Any]:
    """The serving artifact: weights and the standardisation, as JSON any server can load."""
    model = np.load(ctx.input("checkpoint"))
    artifact = {k: model[k].tolist() for k in ("w", "b", "mean", "std")}
    ctx.output("model").write_text(json.dumps(artifact), encoding="utf-8")
    return {"parameters": len(artifact["w"]) + 1}


def stage(ctx: StepContext) -> dict[str, Any]:
    """Bundle the model with its metrics next to the users; refuse a model no better than chance."""
    metrics = json.loads(ctx.input("metrics").read_text(encoding="utf-8"))
    minimum = float(ctx.params.get("min_auc", 0.6))
    if metrics["roc_auc"] < minimum:
        raise ValueError(f"ROC-AUC {metrics['roc_auc']} is below min_auc {minimum}; not staging this model")
    model = json.loads(ctx.input("model").read_text(encoding="utf-8"))
    bundle = {"model": model, "metrics": metrics}
    ctx.output("bundle").write_text(json.dumps(bundle), encoding="utf-8")
    ctx.log(f"staged a model with ROC-AUC {metrics['roc_auc']}")
    return metrics
