"""The federated variant's steps: each jurisdiction's transactions stay at their site; one global model.

``make_site_features`` makes a site's card transactions and their features where they live (a stand-in
for the data a bank already holds there). ``train`` runs Flower with one participant per site, each
reading only its own site's file (``ctx.participants``), and keeps the global logistic model.
``export`` writes that model as ONNX (standardise → linear → sigmoid, the same ``label`` and
``probabilities`` outputs as the gradient-boosted export) and publishes it only if onnxruntime
reproduces the model's own probabilities on held-out rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from fraud_data import make_table
from fraud_features import build_features

from stratus.step import StepContext

PARITY_TOLERANCE = 1e-5


def make_site_features(ctx: StepContext) -> dict[str, Any]:
    """One site's transactions (its own seed) turned into features, written where the site keeps them."""
    [name] = ctx.outputs
    rows, seed = int(ctx.params.get("rows", 100_000)), int(ctx.params.get("seed", 0))
    features = build_features(
        make_table(rows, seed), test_fraction=float(ctx.params.get("test_fraction", 0.2))
    )
    pq.write_table(features, ctx.output(name))
    return {"rows": features.num_rows}


def train(ctx: StepContext) -> dict[str, Any]:
    """Flower across the data sites; the step fails if any site missed a round."""
    from stratus.training.federated import run_federated

    paths = {site: next(iter(refs.values())) for site, refs in ctx.participants.items()}
    result = run_federated(
        paths,
        workdir=ctx.workdir / "flower",
        rounds=int(ctx.params.get("rounds", 3)),
        run_config={"local-epochs": int(ctx.params.get("local_epochs", 3))},
    )
    result.model.save(ctx.output("model"))
    aucs = {site: round(metrics["test-auc"], 4) for site, metrics in result.evaluation.items()}
    ctx.log(
        f"{len(result.rounds)} rounds over {', '.join(paths)} in {result.seconds:.1f} s "
        f"({result.seconds_per_round:.1f} s per round); test AUC per site {aucs}"
    )
    return {
        "rounds": len(result.rounds),
        "seconds_per_round": round(result.seconds_per_round, 3),
        **{f"auc_{site}": auc for site, auc in aucs.items()},
        "exchange_bytes": {
            site: {"sent": result.bytes_sent_per_site.get(site, 0), "received": received}
            for site, received in result.bytes_received_per_site.items()
        },
    }


def export(ctx: StepContext) -> dict[str, Any]:
    """ONNX for serving, proven equal to the federated model on rows the model never trained on."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from stratus.training.federated import LinearModel

    model = LinearModel.from_json(json.loads(Path(ctx.input("model")).read_text()))
    n = len(model.feature_columns)
    weights = model.weights[:-1].astype(np.float32).reshape(n, 1)
    graph = helper.make_graph(
        [
            helper.make_node("Sub", ["features", "mean"], ["centred"]),
            helper.make_node("Div", ["centred", "scale"], ["standard"]),
            helper.make_node("MatMul", ["standard", "w"], ["linear"]),
            helper.make_node("Add", ["linear", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["p_fraud"]),
            helper.make_node("Sub", ["one", "p_fraud"], ["p_legit"]),
            helper.make_node("Concat", ["p_legit", "p_fraud"], ["probabilities"], axis=1),
            helper.make_node("Greater", ["p_fraud", "half"], ["is_fraud"]),
            helper.make_node("Cast", ["is_fraud"], ["label_column"], to=TensorProto.INT64),
            helper.make_node("Squeeze", ["label_column", "axis1"], ["label"]),
        ],
        "fraud_federated",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", n])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2]),
        ],
        [
            numpy_helper.from_array(model.mean.astype(np.float32), "mean"),
            numpy_helper.from_array(model.scale.astype(np.float32), "scale"),
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.array([model.weights[-1]], dtype=np.float32), "b"),
            numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
            numpy_helper.from_array(np.array([0.5], dtype=np.float32), "half"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        ],
    )
    onx = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(onx)
    data = onx.SerializeToString()
    sample = _held_out_rows(model.feature_columns, int(ctx.params.get("parity_rows", 5000)))
    _, proba = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"features": sample})
    diff = float(np.max(np.abs(proba[:, 1] - model.predict_proba(sample.astype(np.float64)))))
    if diff > PARITY_TOLERANCE:
        raise RuntimeError(
            f"ONNX parity failed on {len(sample)} rows: max |Δp| {diff:.2e} (limit {PARITY_TOLERANCE})"
        )
    ctx.output("onnx").write_bytes(data)
    ctx.log(f"ONNX {len(data)} bytes; parity on {len(sample)} rows, max |Δp| {diff:.1e}")
    return {"parity_max_abs_diff": diff, "parity_rows": len(sample), "onnx_bytes": len(data)}


def _held_out_rows(columns: tuple[str, ...], rows: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Fresh transactions (a seed no site trained on), as the feature matrix the model expects."""
    table = build_features(make_table(max(rows, 2_000), seed=99), test_fraction=0.5)
    return np.column_stack([table[c].to_numpy() for c in columns]).astype(np.float32)[:rows]
