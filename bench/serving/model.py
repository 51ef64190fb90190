"""The one model every case serves, and the one request every case sends.

An ONNX logistic model (30 FP32 inputs -> probability and raw score), the same shape as the integration
tests' ``make_logit``, copied here so that the bench does not depend on ``tests/``. The request is one row,
the V2 JSON body is written to a file that ``infer.lua`` reads, and :func:`check_answer` verifies a server's
reply against numpy, so that a fast wrong answer cannot pass as a result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import orjson
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "FEATURES",
    "MODEL_NAME",
    "ROW",
    "binary_request_body",
    "check_answer",
    "expected_prob",
    "make_logit",
    "request_body",
]

MODEL_NAME = "logit"
FEATURES = 30
_RNG = np.random.default_rng(7)
WEIGHTS = _RNG.normal(size=(FEATURES, 1)).astype(np.float32)
BIAS = np.array([0.25], dtype=np.float32)
ROW = _RNG.normal(size=(1, FEATURES)).astype(np.float32)


def make_logit(path: Path) -> Path:
    """x[N,30] FP32 -> score = x·W + b, prob = sigmoid(score), both [N,1]; saved to ``path``."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["score"]),
            helper.make_node("Sigmoid", ["score"], ["prob"]),
        ],
        MODEL_NAME,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
        [
            helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1]),
        ],
        [numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def request_body() -> bytes:
    """The V2 inference request for :data:`ROW`: one input tensor, shape [1, 30], FP32."""
    data = [float(v) for v in ROW.ravel()]
    tensor = {"name": "x", "shape": [1, FEATURES], "datatype": "FP32", "data": data}
    return orjson.dumps({"inputs": [tensor]})


def binary_request_body() -> tuple[bytes, int]:
    """The same request with binary tensor data: (JSON header + raw FP32 bytes, the header's length).

    The answer stays JSON (no ``binary_data_output``), so :func:`check_answer` reads it."""
    raw = ROW.astype("<f4").tobytes()
    size = {"binary_data_size": len(raw)}
    tensor = {"name": "x", "shape": [1, FEATURES], "datatype": "FP32", "parameters": size}
    header = orjson.dumps({"inputs": [tensor]})
    return header + raw, len(header)


def expected_prob() -> float:
    """What the model must answer for :data:`ROW`, computed with numpy from the same weights."""
    score = float((ROW @ WEIGHTS + BIAS)[0, 0])
    return 1.0 / (1.0 + float(np.exp(-score)))


def check_answer(body: bytes) -> None:
    """Raise ValueError unless ``body`` is a V2 response whose ``prob`` output matches numpy's."""
    doc: Any = orjson.loads(body)
    outputs = {o["name"]: o for o in doc.get("outputs", [])}
    if "prob" not in outputs:
        raise ValueError(f"no 'prob' output in the response: {body[:300]!r}")
    got = float(np.asarray(outputs["prob"]["data"], dtype=np.float64).ravel()[0])
    if abs(got - expected_prob()) > 1e-5:
        raise ValueError(f"wrong answer: prob {got}, numpy says {expected_prob()}")
