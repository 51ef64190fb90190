"""Harness for the model-server tests: tiny ONNX models built with the ``onnx`` helper API, and the real
server started as a subprocess on a free loopback port (stopped by PID).

``logit``: 30 floats -> logistic probability, plus the raw score as a second output; ``mixed``: an INT64
and a string input. Expected answers are computed with numpy from the same weights.
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

__all__ = ["Server", "expected_prob", "make_logit", "make_mixed", "start_server", "stop", "x_rows"]

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(7)
WEIGHTS = RNG.normal(size=(30, 1)).astype(np.float32)
BIAS = np.array([0.25], dtype=np.float32)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_logit(path: Path) -> Path:
    """x[N,30] FP32 -> score = x·W + b, prob = sigmoid(score), both [N,1]."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["score"]),
            helper.make_node("Sigmoid", ["score"], ["prob"]),
        ],
        "logit",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 30])],
        [
            helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1]),
        ],
        [numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    return _save(graph, path)


def make_mixed(path: Path) -> Path:
    """ids[N,3] INT64 -> total[N] (row sums); label[N] string -> label_out[N] (identity)."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["ids", "axes"], ["total"], keepdims=0),
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
        [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")],
    )
    return _save(graph, path)


def expected_prob(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """What the logit model must answer for ``x``, computed with numpy."""
    return np.asarray(1.0 / (1.0 + np.exp(-(x @ WEIGHTS + BIAS))))


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


def x_rows(n: int) -> np.ndarray[Any, Any]:
    """``n`` random rows for the logit model."""
    return RNG.normal(size=(n, 30)).astype(np.float32)
