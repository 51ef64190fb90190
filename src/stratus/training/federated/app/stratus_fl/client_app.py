"""The ClientApp each SuperNode runs: it reads only its own site's file and returns weights and metrics.

Raw rows never leave this process: a reply carries the path that was read (so residency can be audited),
column aggregates for standardisation, model weights and scalar metrics. Every failure is turned into a
reply that names the site, because a silent node is indistinguishable from a slow one at the coordinator.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    ConfigRecordValues,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp

from .model import LinearModel, TrainSettings, auc, feature_stats, load_site, log_loss, site_seed, train_sgd
from .protocol import CONFIG, IDENTITY, METRICS, MODEL, STATS, get_float, get_int, node_site, record

__all__ = ["app"]

SITE_ERROR = 1001  # Error.code for "this site could not do what was asked" (read data, train)

app = ClientApp()

Handler = Callable[[Message, Context], Message]


def _reply_errors_as_site_errors(handler: Handler) -> Handler:
    """Wrap a handler so that any exception becomes an error reply with its cause, not a bare failure."""

    def wrapped(msg: Message, context: Context) -> Message:
        try:
            return handler(msg, context)
        except Exception as exc:  # every cause must reach the coordinator, whatever its type
            # The coordinator knows which site this node is and prefixes the name itself.
            reason = f"{type(exc).__name__}: {exc}"
            return Message(Error(code=SITE_ERROR, reason=reason), reply_to=msg)

    return wrapped


def _finite(metrics: dict[str, float]) -> MetricRecord:
    """Metrics without NaN (an AUC on a test split with one class): absent is clearer than NaN in JSON."""
    return MetricRecord({k: float(v) for k, v in metrics.items() if not math.isnan(v)})


def _model_from(msg: Message, feature_columns: tuple[str, ...]) -> LinearModel:
    arrays = record(msg, MODEL, ArrayRecord)
    return LinearModel(
        feature_columns,
        arrays["mean"].numpy().astype(np.float64),
        arrays["scale"].numpy().astype(np.float64),
        arrays["weights"].numpy().astype(np.float64),
    )


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Say which site this is, what it read, and the column sums the coordinator needs to standardise."""
    site, path = node_site(context)
    identity: dict[str, ConfigRecordValues] = {"site": site, "data-path": path}
    try:
        data = load_site(path)
    except Exception as exc:  # reported, not raised: the coordinator needs the site name with the cause
        identity["error"] = f"{type(exc).__name__}: {exc}"
        return Message(RecordDict({IDENTITY: ConfigRecord(identity)}), reply_to=msg)
    total, total_sq = feature_stats(data.x_train)
    identity |= {"data-path": data.path, "feature-columns": ",".join(data.feature_columns)}
    content = RecordDict(
        {
            IDENTITY: ConfigRecord(identity),
            STATS: ArrayRecord({"sum": Array(total), "sumsq": Array(total_sq)}),
            METRICS: MetricRecord({"num-train": len(data.y_train), "num-test": len(data.y_test)}),
        }
    )
    return Message(content, reply_to=msg)


@app.train()
@_reply_errors_as_site_errors
def train(msg: Message, context: Context) -> Message:
    """Local epochs of SGD from the global weights; reply with the new weights and the example count."""
    site, path = node_site(context)
    data = load_site(path)
    config = record(msg, CONFIG, ConfigRecord)
    settings = TrainSettings(
        epochs=get_int(config, "local-epochs"),
        learning_rate=get_float(config, "learning-rate"),
        batch_size=get_int(config, "batch-size"),
        l2=get_float(config, "l2"),
    )
    seed = site_seed(get_int(config, "seed"), get_int(config, "round"), site)
    model = _model_from(msg, data.feature_columns)
    started = time.perf_counter()
    local = train_sgd(model, data.x_train, data.y_train, settings, seed)
    seconds = time.perf_counter() - started
    p_train = local.predict_proba(data.x_train)
    p_test = local.predict_proba(data.x_test)
    metrics = {
        "num-examples": float(len(data.y_train)),
        "train-seconds": seconds,
        "train-loss": log_loss(data.y_train, p_train),
        "test-loss": log_loss(data.y_test, p_test),
        "test-auc": auc(data.y_test, p_test),
        "global-test-auc": auc(data.y_test, model.predict_proba(data.x_test)),
    }
    content = RecordDict(
        {
            MODEL: ArrayRecord({"weights": Array(local.weights)}),
            METRICS: _finite(metrics),
            IDENTITY: ConfigRecord({"site": site, "data-path": data.path}),
        }
    )
    return Message(content, reply_to=msg)


@app.evaluate()
@_reply_errors_as_site_errors
def evaluate(msg: Message, context: Context) -> Message:
    """Test metrics of the final global model on this site's test rows, which stay here."""
    site, path = node_site(context)
    data = load_site(path)
    model = _model_from(msg, data.feature_columns)
    p_test = model.predict_proba(data.x_test)
    metrics = {
        "num-test": float(len(data.y_test)),
        "test-loss": log_loss(data.y_test, p_test),
        "test-auc": auc(data.y_test, p_test),
        "test-accuracy": float(np.mean((p_test >= 0.5) == (data.y_test == 1))) if len(p_test) else math.nan,
    }
    content = RecordDict(
        {METRICS: _finite(metrics), IDENTITY: ConfigRecord({"site": site, "data-path": data.path})}
    )
    return Message(content, reply_to=msg)
