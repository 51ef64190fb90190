"""The fraud-detection demo's steps: make data, ingest, preprocess, train, evaluate, export to ONNX, report.

Each function takes only a StepContext: local input files in, local output files out, params, a log.
Where the files live (which cloud, which bucket) is the runner's business, so these functions run
unchanged on any site. Heavy libraries are imported inside the steps that need them, so a step pays
(in start-up time and, on function sites, in capped memory) only for what it uses.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq
from fraud_data import make_table
from fraud_features import FEATURES, build_features, dedupe, validate

if TYPE_CHECKING:
    from stratus.step import StepContext

PARITY_TOLERANCE = 1e-4  # max abs difference of fraud probabilities, sklearn vs onnxruntime


def _param(ctx: StepContext, name: str, default: Any) -> Any:
    return ctx.params.get(name, default)


def make_transactions(ctx: StepContext) -> dict[str, Any]:
    """The ``raw_transactions`` dataset's maker: synthetic card transactions, the same for the same seed."""
    rows, seed = int(_param(ctx, "rows", 300_000)), int(_param(ctx, "seed", 7))
    table = make_table(rows, seed)
    path = ctx.output("raw_transactions")
    pq.write_table(table, path)
    frauds = int(np.count_nonzero(table["is_fraud"].to_numpy()))
    ctx.log(f"made {table.num_rows} records ({rows} transactions, {frauds} fraudulent) with seed {seed}")
    return {"rows": table.num_rows, "fraud_rate": round(frauds / table.num_rows, 5)}


def ingest(ctx: StepContext) -> dict[str, Any]:
    """Validate the raw feed against its schema, drop replayed records, write ``transactions``."""
    raw = pq.read_table(ctx.input("raw_transactions"))
    table = dedupe(validate(raw))
    pq.write_table(table, ctx.output("transactions"))
    ctx.log(f"{raw.num_rows} records in, {raw.num_rows - table.num_rows} duplicates dropped")
    return {"rows_in": raw.num_rows, "rows_out": table.num_rows, "duplicates": raw.num_rows - table.num_rows}


def preprocess(ctx: StepContext) -> dict[str, Any]:
    """Feature engineering and a time-based split; numpy + pyarrow only, to stay small on a function site."""
    test_fraction = float(_param(ctx, "test_fraction", 0.2))
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    features = build_features(pq.read_table(ctx.input("transactions")), test_fraction)
    pq.write_table(features, ctx.output("features"))
    test_rows = int(np.count_nonzero(features["split"].to_numpy(zero_copy_only=False) == "test"))
    ctx.log(
        f"{len(FEATURES)} features for {features.num_rows} rows; last {test_fraction:.0%} of time is test"
    )
    return {"rows": features.num_rows, "features": len(FEATURES), "test_rows": test_rows}


def _load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Feature matrix (float32), labels, test mask and feature names, as preprocess declared them."""
    table = pq.read_table(path)
    names = table.schema.metadata[b"feature_columns"].decode().split(",")
    x = np.column_stack([table[n].to_numpy() for n in names]).astype(np.float32)
    test = table["split"].to_numpy(zero_copy_only=False) == "test"
    return x, table["is_fraud"].to_numpy().astype(np.int64), test, names


def train(ctx: StepContext) -> dict[str, Any]:
    """Gradient-boosted trees on the train split, with the 1-in-200 class imbalance handled twice.

    Legitimate rows are subsampled (``negative_rate``, re-weighted by its inverse so the data still says
    how common they are) to cut training time tenfold, and each fraud weighs ``pos_weight`` legitimate
    ones so the trees attend to the rare class; a moderate weight keeps scores usable as a threshold,
    where full balancing (~200) would flag 1 transaction in 60. HistGradientBoosting is fast, needs no
    scaling, and skl2onnx converts it exactly (export proves it row by row). One OpenMP thread: with
    two, a busy 2-core machine made fitting 10-20× slower. The bundle carries the feature order and a
    sample of test rows, so export can check ONNX parity without reading the features again.
    """
    import joblib
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    seed = int(_param(ctx, "seed", 0))
    negative_rate = float(_param(ctx, "negative_rate", 0.1))
    x_all, y_all, test, names = _load(ctx.input("features"))
    x, y, x_test = x_all[~test], y_all[~test], x_all[test]
    keep = (y == 1) | (np.random.default_rng(seed).random(len(y)) < negative_rate)
    weight = np.where(y[keep] == 1, float(_param(ctx, "pos_weight", 10.0)), 1.0 / negative_rate)
    model = HistGradientBoostingClassifier(
        max_iter=int(_param(ctx, "max_iter", 100)),
        learning_rate=float(_param(ctx, "learning_rate", 0.15)),
        max_leaf_nodes=int(_param(ctx, "max_leaf_nodes", 31)),
        min_samples_leaf=50,
        l2_regularization=1.0,
        early_stopping=False,  # a fixed number of rounds: same model for the same data, same duration
        random_state=seed,
    )
    started = time.perf_counter()
    with threadpool_limits(int(_param(ctx, "threads", 1))):
        model.fit(x[keep], y[keep], sample_weight=weight)
    seconds = time.perf_counter() - started
    n_sample = min(len(x_test), int(_param(ctx, "parity_rows", 4096)))
    sample = x_test[np.linspace(0, len(x_test) - 1, n_sample).astype(np.int64)]  # spread over the weeks
    joblib.dump({"model": model, "features": names, "parity_sample": sample}, ctx.output("model"))
    frauds, fitted = int(y.sum()), int(keep.sum())
    ctx.log(f"trained on {fitted} of {len(y)} train-split rows ({frauds} frauds) in {seconds:.1f}s")
    return {
        "train_rows": fitted,
        "train_split_rows": len(y),
        "train_frauds": frauds,
        "train_seconds": round(seconds, 2),
    }


def evaluate(ctx: StepContext) -> dict[str, Any]:
    """Ranking quality (ROC-AUC, PR-AUC) on the later, unseen weeks, and precision/recall at a threshold.

    PR-AUC matters more than ROC-AUC at a 0.5% base rate: it says how many alerts are real.
    """
    import joblib
    from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score
    from threadpoolctl import threadpool_limits

    bundle = joblib.load(ctx.input("model"))
    x_all, y_all, test, names = _load(ctx.input("features"))
    x, y = x_all[test], y_all[test]
    if names != bundle["features"]:
        raise ValueError(f"features differ from the model's: {names} vs {bundle['features']}")
    if y.min() == y.max():
        raise ValueError("the test split has a single class: ROC-AUC is undefined")
    with threadpool_limits(1):  # see train
        proba = bundle["model"].predict_proba(x)[:, 1]
    threshold = float(_param(ctx, "threshold", 0.5))
    alert = proba >= threshold
    metrics = {
        "roc_auc": round(float(roc_auc_score(y, proba)), 4),
        "pr_auc": round(float(average_precision_score(y, proba)), 4),
        "base_rate": round(float(y.mean()), 5),
        "threshold": threshold,
        "precision": round(float(precision_score(y, alert, zero_division=0)), 4),
        "recall": round(float(recall_score(y, alert)), 4),
        "alert_rate": round(float(alert.mean()), 5),
        "test_rows": len(y),
        "test_frauds": int(y.sum()),
    }
    ctx.output("metrics").write_text(json.dumps(metrics, indent=2) + "\n")
    ctx.log(f"ROC-AUC {metrics['roc_auc']}, PR-AUC {metrics['pr_auc']} (base rate {metrics['base_rate']})")
    return metrics


def export(ctx: StepContext) -> dict[str, Any]:
    """ONNX for serving, proven equal to the sklearn model on held-out rows before anyone serves it.

    ONNX trees compare in float32. scikit-learn ≥ 1.8 puts split thresholds on data values, so float64
    features let rows next to a threshold fall on the other side in ONNX (the field notes' "HGB wrong on
    1.9.1"); preprocess therefore emits float32 features, which makes both comparisons identical. The
    file is still published only if onnxruntime reproduces every probability within PARITY_TOLERANCE and
    every label on the bundle's test sample: a converter can change predictions silently.
    """
    import joblib
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from threadpoolctl import threadpool_limits

    bundle = joblib.load(ctx.input("model"))
    model, sample = bundle["model"], bundle["parity_sample"]
    with warnings.catch_warnings():  # skl2onnx hands protobuf bools for ints; fine below protobuf 7
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="onnx")
        onx = convert_sklearn(
            model,
            name="fraud_model",  # skl2onnx's default is a random id: the same model must give the same bytes
            initial_types=[("features", FloatTensorType([None, len(bundle["features"])]))],
            options={id(model): {"zipmap": False}},  # plain tensors, not a list of dicts
            target_opset={"": int(_param(ctx, "opset", 17)), "ai.onnx.ml": 3},
        )
    data = onx.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    labels, proba = session.run(None, {"features": sample})
    with threadpool_limits(1):  # see train
        expected, expected_labels = model.predict_proba(sample)[:, 1], model.predict(sample)
    diff = float(np.max(np.abs(proba[:, 1] - expected)))
    mismatched = int(np.count_nonzero(labels != expected_labels))
    if len(sample) < 2_000 or diff > PARITY_TOLERANCE or mismatched:
        raise RuntimeError(
            f"ONNX parity failed on {len(sample)} rows: max |Δp| {diff:.2e} (limit {PARITY_TOLERANCE}), "
            f"{mismatched} labels differ (need ≥ 2000 rows)"
        )
    ctx.output("onnx").write_bytes(data)
    ctx.log(f"ONNX {len(data)} bytes; parity on {len(sample)} rows, max |Δp| {diff:.1e}")
    return {"parity_max_abs_diff": diff, "parity_rows": len(sample), "onnx_bytes": len(data)}


def report(ctx: StepContext) -> dict[str, Any]:
    """A few lines a person reads: is the model good enough to look at, and what would it cost in alerts."""
    metrics: Mapping[str, Any] = json.loads(ctx.input("metrics").read_text())
    minimum = float(_param(ctx, "min_roc_auc", 0.9))
    verdict = "ready for review" if metrics["roc_auc"] >= minimum else "below target"
    text = (
        f"Fraud model on {metrics['test_rows']} held-out transactions ({metrics['test_frauds']} frauds, "
        f"base rate {metrics['base_rate']:.2%}): ROC-AUC {metrics['roc_auc']:.3f}, PR-AUC "
        f"{metrics['pr_auc']:.3f}. At threshold {metrics['threshold']}, {metrics['alert_rate']:.2%} of "
        f"transactions raise an alert; precision {metrics['precision']:.1%}, recall {metrics['recall']:.1%}. "
        f"Verdict: {verdict} (target ROC-AUC ≥ {minimum})."
    )
    summary = {"verdict": verdict, "summary": text, "metrics": dict(metrics)}
    ctx.output("summary").write_text(json.dumps(summary, indent=2) + "\n")
    ctx.log(text)
    return {"verdict": verdict}
