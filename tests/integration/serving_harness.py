"""Harness for the model-server tests: tiny ONNX models built with the ``onnx`` helper API, and the real
server started as a subprocess on a free loopback port (stopped by PID).

``logit``: 30 floats -> logistic probability, plus the raw score as a second output; ``mixed``: an INT64
and a string input; ``pick``: a table lookup that ORT rejects for an index out of range; ``flat``: outputs
that are not one row per input row; ``fixed``: a fixed first dimension. Expected answers are computed with
numpy from the same weights. ``delay`` adds matrix products whose result is multiplied by zero: the answer
is unchanged but each ORT call takes milliseconds, so that concurrent requests surely queue behind it.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import orjson
import pytest
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "TABLE",
    "Framed",
    "Server",
    "as_result",
    "binary_request",
    "expected_prob",
    "expected_score",
    "make_fixed",
    "make_flat",
    "make_logit",
    "make_mixed",
    "make_pick",
    "metric_samples",
    "start_server",
    "stop",
    "x_rows",
]

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(7)
WEIGHTS = RNG.normal(size=(30, 1)).astype(np.float32)
BIAS = np.array([0.25], dtype=np.float32)
TABLE = np.arange(10, dtype=np.float32) * 1.5 - 3.0
_DELAY_SIZE = 384


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _delayed(
    source: str, before: str, after: str, elem_type: int, products: int
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes making ``after`` = ``before`` + 0 · (``products`` matrix products fed by ``source``).

    The products depend on the input, so that ORT cannot fold them away when it loads the model.
    """
    if not products:
        return [helper.make_node("Identity", [before], [after])], []
    size = _DELAY_SIZE
    nodes = [
        helper.make_node("Cast", [source], ["d_cast"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["d_cast"], ["d_mean"], keepdims=0),
        helper.make_node("Mul", ["d_mean", "d_ones"], ["d_0"]),
    ]
    for i in range(products):
        nodes.append(helper.make_node("MatMul", [f"d_{i}", "d_avg"], [f"d_{i + 1}"]))
    nodes += [
        helper.make_node("ReduceMean", [f"d_{products}"], ["d_sum"], keepdims=0),
        helper.make_node("Mul", ["d_sum", "d_zero"], ["d_zero_f"]),
        helper.make_node("Cast", ["d_zero_f"], ["d_zero_t"], to=elem_type),
        helper.make_node("Add", [before, "d_zero_t"], [after]),
    ]
    constants = [
        numpy_helper.from_array(np.ones((size, size), np.float32), "d_ones"),
        # Averaging keeps every value the size of the input's mean: finite, so that 0 · it is exactly 0.
        numpy_helper.from_array(np.full((size, size), 1.0 / size, np.float32), "d_avg"),
        numpy_helper.from_array(np.array(0.0, np.float32), "d_zero"),
    ]
    return nodes, constants


def make_logit(path: Path, *, delay: int = 0) -> Path:
    """x[N,30] FP32 -> score = x·W + b, prob = sigmoid(score), both [N,1]."""
    slow, constants = _delayed("x", "raw_score", "score", TensorProto.FLOAT, delay)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["raw_score"]),
            *slow,
            helper.make_node("Sigmoid", ["score"], ["prob"]),
        ],
        "logit",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 30])],
        [
            helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1]),
        ],
        [numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b"), *constants],
    )
    return _save(graph, path)


def make_mixed(path: Path, *, delay: int = 0) -> Path:
    """ids[N,3] INT64 -> total[N] (row sums); label[N] string -> label_out[N] (identity)."""
    slow, constants = _delayed("ids", "raw_total", "total", TensorProto.INT64, delay)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["ids", "axes"], ["raw_total"], keepdims=0),
            *slow,
            helper.make_node("Identity", ["label"], ["label_out"]),
        ],
        "mixed",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 3]),
            helper.make_tensor_value_info("label", TensorProto.STRING, ["N"]),
        ],
        [
            helper.make_tensor_value_info("total", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("label_out", TensorProto.STRING, ["N"]),
        ],
        [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"), *constants],
    )
    return _save(graph, path)


def make_pick(path: Path, *, delay: int = 0) -> Path:
    """idx[N,1] INT64 -> value[N,1] = TABLE[idx]; ORT (not the parser) rejects an index outside [-10, 9]."""
    slow, constants = _delayed("idx", "raw_value", "value", TensorProto.FLOAT, delay)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["raw_value"], axis=0), *slow],
        "pick",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["N", 1])],
        [helper.make_tensor_value_info("value", TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(TABLE, "table"), *constants],
    )
    return _save(graph, path)


def make_flat(path: Path, *, delay: int = 0) -> Path:
    """x[N,3] FP32 -> flat[3N] = x flattened: variable first dims, but not one output row per input row."""
    slow, constants = _delayed("x", "raw_flat", "flat", TensorProto.FLOAT, delay)
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "minus_one"], ["raw_flat"]), *slow],
        "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["M"])],
        [numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus_one"), *constants],
    )
    return _save(graph, path)


def make_fixed(path: Path) -> Path:
    """x[2,3] FP32 -> y[2,3] = 2x: a fixed first dimension, so requests are never batched."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    return _save(graph, path)


def expected_score(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The logit model's ``score`` for ``x``, computed with numpy."""
    return np.asarray(x @ WEIGHTS + BIAS)


def expected_prob(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """What the logit model must answer for ``x``, computed with numpy."""
    return np.asarray(1.0 / (1.0 + np.exp(-expected_score(x))))


@dataclass(frozen=True)
class Framed:
    """A request body with binary tensor data and the headers that must go with it."""

    body: bytes
    headers: dict[str, str]


def binary_request(
    inputs: list[tuple[str, str, np.ndarray[Any, Any]]],
    outputs: list[str] | None = None,
    *,
    binary_outputs: bool = True,
    request_id: str = "",
) -> Framed:
    """A request framed by tritonclient itself (its public ``generate_request_body``): each input as
    (name, V2 datatype, array) in binary; ``outputs`` asked by name, binary unless ``binary_outputs`` is
    False (with no ``outputs``, tritonclient asks for every output in binary)."""
    from tritonclient import http as triton

    tensors = []
    for name, datatype, array in inputs:
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    wanted = [triton.InferRequestedOutput(n, binary_data=binary_outputs) for n in outputs or []]
    body, json_size = triton.InferenceServerClient.generate_request_body(
        tensors, outputs=wanted or None, request_id=request_id
    )
    headers = {} if json_size is None else {"Inference-Header-Content-Length": str(json_size)}
    return Framed(body, headers)


def as_result(body: bytes, headers: dict[str, str]) -> Any:
    """A response parsed by tritonclient itself (``InferResult``): binary outputs and JSON alike."""
    from tritonclient import http as triton

    length = headers.get("inference-header-content-length")
    return triton.InferenceServerClient.parse_response_body(
        body, header_length=None if length is None else int(length)
    )


@dataclass
class Server:
    """A running server process and its port; ``call`` sends one request on a fresh connection."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """One request; JSON bodies are decoded, other bodies returned as text."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            raw = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
            conn.request(method, path, body=raw, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            if response.getheader("content-type") == "application/json":
                return response.status, orjson.loads(data)
            return response.status, data.decode()
        finally:
            conn.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(models: dict[str, Path], log: Path, *extra: str) -> Server:
    """Start ``python -m stratus.serving.server`` on a free port; returns once readiness answers 200."""
    port = _free_port()
    args = [sys.executable, "-m", "stratus.serving.server", "--port", str(port), *extra]
    for name, path in models.items():
        args += ["--model", f"{name}={path}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    server = Server(proc, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}", pytrace=False)
        try:
            if server.call("GET", "/v2/health/ready")[0] == 200:
                return server
        except OSError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"server not ready in 60 s: {log.read_text()[-2000:]}", pytrace=False)


def stop(server: Server) -> None:
    """Kill the process by PID if it is still running."""
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(10)


def metric_samples(server: Server, name: str, **labels: str) -> dict[str, float]:
    """The samples of metric family ``name`` whose labels include ``labels``, keyed by what follows the
    family name (``count``, ``sum``, ``total``), buckets by their bound (``le=4.0``)."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = server.call("GET", "/metrics")
    assert status == 200, text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if all(sample.labels.get(k) == v for k, v in labels.items()):
                le = sample.labels.get("le")
                key = f"le={float(le)}" if le is not None else sample.name[len(name) + 1 :]
                found[key] = sample.value
    return found


def x_rows(n: int) -> np.ndarray[Any, Any]:
    """``n`` random rows for the logit model."""
    return RNG.normal(size=(n, 30)).astype(np.float32)
