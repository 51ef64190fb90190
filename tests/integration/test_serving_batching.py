"""Adaptive micro-batching in the real server process: concurrent requests share ORT calls, and every client
still gets exactly its own rows (or its own error), checked against numpy.

Most models here carry a ``delay`` (see :mod:`tests.integration.serving_harness`): each ORT call takes a few
milliseconds, so requests released together surely queue behind the first call and share the next one.
The batch-size histograms prove it: rows per call and requests per call, per model.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.integration.serving_harness import (
    TABLE,
    Framed,
    Server,
    as_result,
    binary_request,
    expected_prob,
    expected_score,
    make_fixed,
    make_flat,
    make_logit,
    make_mixed,
    make_pick,
    metric_samples,
    start_server,
    stop,
    x_rows,
)

pytestmark = pytest.mark.slow

CONCURRENCY = 32
DELAY = 2  # matrix products per call in the delayed models: a few milliseconds each


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {
        "logit": make_logit(folder / "logit.onnx"),
        "slow": make_logit(folder / "slow.onnx", delay=DELAY),
        "mixed": make_mixed(folder / "mixed.onnx", delay=DELAY),
        "pick": make_pick(folder / "pick.onnx", delay=DELAY),
        "flat": make_flat(folder / "flat.onnx", delay=DELAY),
        "fixed": make_fixed(folder / "fixed.onnx"),
    }


@pytest.fixture(scope="module")
def server(model_paths: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    handle = start_server(model_paths, tmp_path_factory.mktemp("log") / "server.log")
    yield handle
    stop(handle)


def concurrently(server: Server, bodies: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, Any]]:
    """POST every (model, body) from a thread of its own, all released at once; answers in order."""
    results: list[tuple[int, Any]] = [(0, None)] * len(bodies)
    connections = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=30) for _ in bodies]
    for conn in connections:
        conn.connect()  # connected before the barrier, so that the requests arrive together
    barrier = threading.Barrier(len(bodies))

    def send(i: int) -> None:
        model, body = bodies[i]
        # A Framed body (binary tensor data) is sent as is; its answer is tritonclient's InferResult.
        framed = body if isinstance(body, Framed) else Framed(orjson.dumps(body), {})
        barrier.wait()
        connections[i].request("POST", f"/v2/models/{model}/infer", framed.body, framed.headers)
        response = connections[i].getresponse()
        data = response.read()
        if isinstance(body, Framed) and response.status == 200:
            headers = {k.lower(): v for k, v in response.getheaders()}
            results[i] = (response.status, as_result(data, headers))
        else:
            results[i] = (response.status, orjson.loads(data))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for conn in connections:
        conn.close()
    assert all(status for status, _ in results), "a request got no answer"
    return results


def until_batched(server: Server, model: str, one_round: Callable[[], object]) -> int:
    """Run ``one_round`` (concurrent requests whose answers it checks) until some ORT call of ``model`` has
    served more than one request; returns the rounds it took. With a delayed model the first round does."""
    for round_ in range(1, 6):
        one_round()
        calls = metric_samples(server, "stratus_serving_batch_requests", model=model)
        if calls["le=1.0"] < calls["count"]:
            return round_
    pytest.fail(f"no ORT call of {model!r} served more than one request in 5 rounds of {CONCURRENCY}")


def logit_body(x: np.ndarray[Any, Any], **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.tolist()}],
        **extra,
    }


def check_logit(x: np.ndarray[Any, Any], answer: tuple[int, Any], wanted: list[str] | None) -> None:
    status, doc = answer
    assert status == 200, doc
    outputs = {o["name"]: o for o in doc["outputs"]}
    assert list(outputs) == (wanted or ["prob", "score"])
    expected = {"prob": expected_prob(x), "score": expected_score(x)}
    for name, output in outputs.items():
        assert output["shape"] == [len(x), 1]
        np.testing.assert_allclose(np.reshape(output["data"], (-1, 1)), expected[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", ["slow", "logit"])
def test_concurrent_distinct_requests_each_get_their_own_rows(server: Server, model: str) -> None:
    sent_rows = sent_requests = 0

    def one_round() -> None:
        nonlocal sent_rows, sent_requests
        # Distinct data and row counts (1 to 3), some asking for one output, some tagged with an id.
        xs = [x_rows(1 + i % 3) for i in range(CONCURRENCY)]
        wanted: list[list[str] | None] = [
            [None, ["score"], ["prob"], None][i % 4] for i in range(CONCURRENCY)
        ]
        bodies = []
        for i, (x, names) in enumerate(zip(xs, wanted, strict=True)):
            extra: dict[str, Any] = {"id": f"r{i}"}
            if names:
                extra["outputs"] = [{"name": n} for n in names]
            bodies.append((model, logit_body(x, **extra)))
        answers = concurrently(server, bodies)
        for i, (x, names, answer) in enumerate(zip(xs, wanted, answers, strict=True)):
            check_logit(x, answer, names)
            assert answer[1]["id"] == f"r{i}"
        sent_rows += sum(len(x) for x in xs)
        sent_requests += len(xs)

    if model == "slow":
        until_batched(server, model, one_round)
    else:  # the fast model may or may not batch: the answers must be right either way
        one_round()
    # Every row and every request went through exactly one ORT call.
    rows = metric_samples(server, "stratus_serving_batch_rows", model=model)
    calls = metric_samples(server, "stratus_serving_batch_requests", model=model)
    assert rows["sum"] == sent_rows
    assert calls["sum"] == sent_requests
    assert calls["count"] == rows["count"]


def test_bytes_and_int64_requests_are_batched_and_split_back(server: Server) -> None:
    def one_round() -> None:
        bodies, expected = [], []
        for i in range(CONCURRENCY):
            n = 1 + i % 2
            ids = [[i, 2 * i, k] for k in range(n)]
            labels = [f"req{i}-row{k}-é" for k in range(n)]
            bodies.append(
                (
                    "mixed",
                    {
                        "inputs": [
                            {"name": "ids", "shape": [n, 3], "datatype": "INT64", "data": ids},
                            {"name": "label", "shape": [n], "datatype": "BYTES", "data": labels},
                        ]
                    },
                )
            )
            expected.append(([sum(row) for row in ids], labels))
        for (status, doc), (totals, labels) in zip(concurrently(server, bodies), expected, strict=True):
            assert status == 200, doc
            outputs = {o["name"]: o for o in doc["outputs"]}
            assert outputs["total"]["data"] == totals
            assert outputs["label_out"]["data"] == labels
            assert outputs["label_out"]["shape"] == [len(labels)]

    until_batched(server, "mixed", one_round)


def test_binary_and_json_requests_share_calls_and_get_their_own_rows(server: Server) -> None:
    """tritonclient's default framing (binary in, binary out) batches like JSON, and with it: both decode
    to the same dtype and trailing dims, so they may share one ORT call."""

    def one_round() -> None:
        bodies: list[tuple[str, Any]] = []
        expected = []
        for i in range(CONCURRENCY):
            n = 1 + i % 3
            if i % 4 == 3:  # every fourth request in JSON
                x = x_rows(n)
                bodies.append(("slow", logit_body(x)))
                expected.append(("slow", x))
            elif i % 2:
                x = x_rows(n)
                bodies.append(("slow", binary_request([("x", "FP32", x)])))
                expected.append(("slow", x))
            else:
                ids = np.array([[i, 2 * i, k] for k in range(n)], np.int64)
                labels = np.array([f"r{i}-{k}-é".encode() for k in range(n)], dtype=object)
                framed = binary_request([("ids", "INT64", ids), ("label", "BYTES", labels)], ["label_out"])
                bodies.append(("mixed", framed))
                expected.append(("mixed", labels))
        for (model, data), (status, answer) in zip(expected, concurrently(server, bodies), strict=True):
            assert status == 200, answer
            if model == "mixed":
                assert answer.as_numpy("label_out").tolist() == data.tolist()
                assert answer.get_output("total") is None  # only the asked output
            elif isinstance(answer, dict):
                check_logit(data, (status, answer), None)
            else:
                np.testing.assert_allclose(answer.as_numpy("prob"), expected_prob(data), rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(
                    answer.as_numpy("score"), expected_score(data), rtol=1e-5, atol=1e-6
                )

    until_batched(server, "slow", one_round)
    until_batched(server, "mixed", one_round)


def test_a_request_that_ort_rejects_fails_alone(server: Server) -> None:
    # Index 99 passes the parser (an INT64) but not ORT's Gather; the others share calls with it.
    indices = [[i % 10 - (i % 3)] for i in range(CONCURRENCY)]
    bad = 5
    indices[bad] = [99]
    bodies = [
        ("pick", {"inputs": [{"name": "idx", "shape": [1, 1], "datatype": "INT64", "data": [idx]}]})
        for idx in indices
    ]
    answers = concurrently(server, bodies)
    status, doc = answers[bad]
    assert status == 400, doc
    assert "idx=99" in doc["error"]
    assert "'pick'" in doc["error"]
    for i, (status, doc) in enumerate(answers):
        if i != bad:
            assert status == 200, doc
            assert doc["outputs"][0]["data"] == [float(TABLE[indices[i][0]])]


def test_outputs_not_row_aligned_are_never_split_across_requests(server: Server) -> None:
    xs = [x_rows(1 + i % 2)[:, :3] for i in range(CONCURRENCY)]
    bodies = [
        ("flat", {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.tolist()}]})
        for x in xs
    ]
    for x, (status, doc) in zip(xs, concurrently(server, bodies), strict=True):
        assert status == 200, doc
        assert doc["outputs"][0]["shape"] == [x.size]
        np.testing.assert_allclose(doc["outputs"][0]["data"], x.ravel(), rtol=1e-6)
    # A batched try whose outputs cannot be split is answered call by call, and batching stops.
    calls = metric_samples(server, "stratus_serving_batch_requests", model="flat")
    assert calls["count"] == CONCURRENCY
    assert calls["le=1.0"] == CONCURRENCY
    assert "no longer batched" in server.log.read_text()


def test_fixed_first_dimension_runs_requests_alone(server: Server) -> None:
    xs = [np.full((2, 3), i, np.float32) for i in range(8)]
    bodies = [
        ("fixed", {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": x.tolist()}]})
        for x in xs
    ]
    for x, (status, doc) in zip(xs, concurrently(server, bodies), strict=True):
        assert status == 200, doc
        assert doc["outputs"][0]["data"] == (2 * x).ravel().tolist()
    calls = metric_samples(server, "stratus_serving_batch_requests", model="fixed")
    assert calls["le=1.0"] == calls["count"] == 8


def test_health_answers_while_a_batch_runs(server: Server) -> None:
    # Requests to the slow model keep its worker busy; liveness must still answer, as ORT runs off the loop.
    stop_sending = threading.Event()

    def load() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        body = orjson.dumps(logit_body(x_rows(4)))
        while not stop_sending.is_set():
            conn.request("POST", "/v2/models/slow/infer", body=body)
            assert conn.getresponse().read()
        conn.close()

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(20):
            assert server.call("GET", "/v2/health/live") == (200, {"live": True})
    finally:
        stop_sending.set()
        for thread in threads:
            thread.join(30)


@pytest.mark.parametrize(("max_rows", "rows_per_request"), [(1, 1), (4, 1), (4, 3), (4, 6)])
def test_max_batch_rows_caps_each_call(
    model_paths: dict[str, Path], tmp_path: Path, max_rows: int, rows_per_request: int
) -> None:
    handle = start_server(
        {"slow": model_paths["slow"]}, tmp_path / "server.log", "--max-batch-rows", str(max_rows)
    )
    try:
        for _ in range(3):  # rounds, so that some call surely gathers as many requests as the cap allows
            xs = [x_rows(rows_per_request) for _ in range(16)]
            for x, answer in zip(
                xs, concurrently(handle, [("slow", logit_body(x)) for x in xs]), strict=True
            ):
                check_logit(x, answer, None)
        rows = metric_samples(handle, "stratus_serving_batch_rows", model="slow")
        calls = metric_samples(handle, "stratus_serving_batch_requests", model="slow")
    finally:
        stop(handle)
    count = calls["count"]
    assert calls["sum"] == 48
    assert rows["sum"] == 48 * rows_per_request
    # The bounds below are powers of two, as are the histogram buckets, so "at most" is exact here.
    most_requests = max(1, max_rows // rows_per_request)
    assert calls[f"le={float(most_requests)}"] == count
    if most_requests > 1:
        assert calls["le=1.0"] < count, "no call was batched"
        assert rows[f"le={float(max_rows)}"] == count
    else:  # each request alone, even one larger than the cap
        assert count == 48


def test_max_batch_rows_must_be_positive(model_paths: dict[str, Path], tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stratus.serving.server",
            "--model",
            f"slow={model_paths['slow']}",
            "--max-batch-rows",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "--max-batch-rows: expected a positive integer, got 0" in result.stderr
