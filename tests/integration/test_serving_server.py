"""The V2 model server as a real subprocess on a loopback port, driven over HTTP and by tritonclient.

The models and the start/stop code are in :mod:`tests.integration.serving_harness`.
"""

from __future__ import annotations

import http.client
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.integration.serving_harness import (
    Server,
    as_result,
    binary_request,
    expected_prob,
    make_logit,
    make_mixed,
    start_server,
    stop,
    x_rows,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {"logit": make_logit(folder / "logit.onnx"), "mixed": make_mixed(folder / "mixed.onnx")}


@pytest.fixture(scope="module")
def server(model_paths: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("log") / "server.log"
    handle = start_server(model_paths, log, "--max-body-bytes", "65536")
    yield handle
    stop(handle)


def infer_body(x: np.ndarray[Any, Any], *, nested: bool = False, **extra: Any) -> dict[str, Any]:
    data = x.tolist() if nested else x.ravel().tolist()
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": data}], **extra}


def test_health_and_server_metadata(server: Server) -> None:
    assert server.call("GET", "/v2/health/live") == (200, {"live": True})
    assert server.call("GET", "/v2/health/ready") == (200, {"ready": True})
    status, meta = server.call("GET", "/v2")
    assert status == 200
    assert meta["name"] == "stratus"
    assert "version" in meta


def test_model_metadata_and_readiness(server: Server) -> None:
    status, meta = server.call("GET", "/v2/models/logit")
    assert status == 200
    assert meta["name"] == "logit"
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 30]}]
    assert meta["outputs"] == [
        {"name": "prob", "datatype": "FP32", "shape": [-1, 1]},
        {"name": "score", "datatype": "FP32", "shape": [-1, 1]},
    ]
    assert server.call("GET", "/v2/models/logit/versions/1") == (200, meta)
    assert server.call("GET", "/v2/models/logit/ready") == (200, {"name": "logit", "ready": True})
    status, mixed = server.call("GET", "/v2/models/mixed")
    assert status == 200
    assert [(t["name"], t["datatype"]) for t in mixed["inputs"]] == [("ids", "INT64"), ("label", "BYTES")]


@pytest.mark.parametrize("nested", [False, True])
def test_infer_flat_and_nested_returns_all_outputs(server: Server, nested: bool) -> None:
    x = x_rows(3)
    status, doc = server.call("POST", "/v2/models/logit/infer", infer_body(x, nested=nested, id="req-7"))
    assert status == 200, doc
    assert doc["id"] == "req-7"
    assert doc["model_name"] == "logit"
    outputs = {o["name"]: o for o in doc["outputs"]}
    assert set(outputs) == {"prob", "score"}
    assert outputs["prob"]["shape"] == [3, 1]
    assert outputs["prob"]["datatype"] == "FP32"
    np.testing.assert_allclose(outputs["prob"]["data"], expected_prob(x).ravel(), rtol=1e-5, atol=1e-6)


def test_infer_requested_output_only_and_versioned_path(server: Server) -> None:
    body = infer_body(x_rows(2), outputs=[{"name": "score"}])
    status, doc = server.call("POST", "/v2/models/logit/versions/1/infer", body)
    assert status == 200, doc
    assert [o["name"] for o in doc["outputs"]] == ["score"]
    assert "id" not in doc


def test_infer_without_content_type_and_int64_bytes_inputs(server: Server) -> None:
    body = {
        "inputs": [
            {"name": "ids", "shape": [2, 3], "datatype": "INT64", "data": [[1, 2, 3], [10, 20, 2**40]]},
            {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["fraud", "ok"]},
        ]
    }
    # http.client sends no Content-Type unless told, like tritonclient.
    status, doc = server.call("POST", "/v2/models/mixed/infer", orjson.dumps(body))
    assert status == 200, doc
    outputs = {o["name"]: o for o in doc["outputs"]}
    assert outputs["total"] == {"name": "total", "datatype": "INT64", "shape": [2], "data": [6, 30 + 2**40]}
    assert outputs["label_out"]["data"] == ["fraud", "ok"]
    assert outputs["label_out"]["datatype"] == "BYTES"


def _x(**overrides: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32", "data": [0.5] * 30, **overrides}]}


BAD_INPUTS = [
    pytest.param("logit", _x(shape=[1, 29], data=[0.5] * 29), ["'x'", "[1, 29]", "[-1, 30]"], id="shape"),
    pytest.param("logit", _x(shape=[30]), ["'x'", "[30]", "[-1, 30]"], id="rank"),
    pytest.param("logit", _x(datatype="FP64"), ["'x'", "'FP64'", "FP32"], id="datatype"),
    pytest.param("logit", _x(data=[0.5] * 29), ["'x'", "29 values", "needs 30"], id="length"),
    pytest.param("logit", _x(data=["a"] * 30), ["'x'", "FP32", "numbers"], id="strings-for-floats"),
    pytest.param("logit", _x(name="y"), ["'y'", "['x']"], id="unknown-input"),
    pytest.param("logit", {"inputs": []}, ["'inputs'"], id="no-inputs"),
    pytest.param("logit", {**_x(), "outputs": [{"name": "z"}]}, ["'z'", "['prob', 'score']"], id="output"),
    pytest.param(
        "mixed",
        {"inputs": [{"name": "ids", "shape": [1, 3], "datatype": "INT64", "data": [1.5, 2, 3]}]},
        ["'ids'", "INT64", "integers"],
        id="float-for-int",
    ),
    pytest.param(
        "mixed",
        {"inputs": [{"name": "ids", "shape": [1, 3], "datatype": "INT64", "data": [1, 2, 3]}]},
        ["missing inputs", "'label'"],
        id="missing-input",
    ),
]


@pytest.mark.parametrize(("model", "body", "fragments"), BAD_INPUTS)
def test_bad_input_is_400_naming_tensor_and_expectation(
    server: Server, model: str, body: dict[str, Any], fragments: list[str]
) -> None:
    status, doc = server.call("POST", f"/v2/models/{model}/infer", body)
    assert status == 400, doc
    for fragment in fragments:
        assert fragment in doc["error"], doc["error"]


def test_malformed_json_is_400_and_unknown_model_or_version_404_as_triton_answers(server: Server) -> None:
    status, doc = server.call("POST", "/v2/models/logit/infer", b'{"inputs": [')
    assert status == 400
    assert "not valid JSON" in doc["error"]
    unknown = {"error": "unknown model 'nope': the models served here are ['logit', 'mixed']"}
    for method, path in [
        ("GET", "/v2/models/nope"),
        ("POST", "/v2/models/nope/infer"),
        ("GET", "/v2/models/nope/config"),
        ("GET", "/v2/models/nope/stats"),
    ]:
        assert server.call(method, path, _x() if method == "POST" else None) == (404, unknown)
    for path in ["/v2/models/logit/versions/9", "/v2/models/logit/versions/9/config"]:
        assert server.call("GET", path) == (404, {"error": "model 'logit' has no version '9'; it has ['1']"})


def test_oversized_body_is_413(server: Server) -> None:
    status, doc = server.call("POST", "/v2/models/logit/infer", b" " * 70_000)
    assert status == 413
    assert "65536 bytes" in doc["error"]


def test_tritonclient_end_to_end(server: Server) -> None:
    from tritonclient import http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("logit")
        meta = client.get_model_metadata("logit")
        assert meta["inputs"][0]["shape"] == [-1, 30]
        x = x_rows(4)
        tensor = triton.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=False)
        wanted = [triton.InferRequestedOutput("prob", binary_data=False)]
        result = client.infer("logit", [tensor], outputs=wanted, request_id="t-1")
        np.testing.assert_allclose(result.as_numpy("prob"), expected_prob(x), rtol=1e-5, atol=1e-6)
        assert result.get_response()["id"] == "t-1"
    finally:
        client.close()


def test_metrics_count_requests_latency_and_errors(server: Server) -> None:
    server.call("POST", "/v2/models/logit/infer", infer_body(x_rows(1)))
    server.call("POST", "/v2/models/nope/infer", _x())
    status, text = server.call("GET", "/metrics")
    assert status == 200
    assert 'stratus_serving_requests_total{code="200",route="/v2/models/{m}/infer"}' in text
    assert 'stratus_serving_request_seconds_bucket{le="0.001",route="/v2/models/{m}/infer"}' in text
    assert 'stratus_serving_errors_total{code="404"}' in text


def test_sigterm_drains_then_exits_zero(model_paths: dict[str, Path], tmp_path: Path) -> None:
    server = start_server({"logit": model_paths["logit"]}, tmp_path / "drain.log", "--drain-s", "2")
    try:
        body = orjson.dumps(infer_body(x_rows(1)))
        # An in-flight request: headers and half the body sent before SIGTERM, the rest after.
        inflight = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        inflight.putrequest("POST", "/v2/models/logit/infer")
        inflight.putheader("Content-Length", str(len(body)))
        inflight.endheaders()
        inflight.send(body[: len(body) // 2])
        time.sleep(0.2)
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while server.call("GET", "/v2/health/ready") != (503, {"ready": False}):
            assert time.monotonic() < deadline, "readiness never failed after SIGTERM"
            time.sleep(0.05)
        # New requests are still served during the drain period...
        assert server.call("GET", "/v2/health/live") == (200, {"live": True})
        assert server.call("POST", "/v2/models/logit/infer", body)[0] == 200
        # ...and so is the one that was in flight.
        inflight.send(body[len(body) // 2 :])
        response = inflight.getresponse()
        assert response.status == 200, response.read()
        inflight.close()
        assert server.proc.wait(15) == 0, server.log.read_text()[-2000:]
    finally:
        stop(server)


@pytest.fixture(scope="module")
def sessions(model_paths: dict[str, Path]) -> dict[str, Any]:
    """ONNX Runtime itself on the same files: what every answer must equal."""
    import onnxruntime as ort

    return {name: ort.InferenceSession(str(path)) for name, path in model_paths.items()}


def test_tritonclient_defaults_send_and_receive_binary_tensors(
    server: Server, sessions: dict[str, Any]
) -> None:
    """The call that used to fail with "not valid UTF-8": set_data_from_numpy(x) and InferRequestedOutput(n)
    unchanged (binary both ways), FP32, INT64 and BYTES, answers equal to onnxruntime's."""
    from tritonclient import http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        x = x_rows(5)
        tensor = triton.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer("logit", [tensor], request_id="b-1")
        prob, score = sessions["logit"].run(["prob", "score"], {"x": x})
        np.testing.assert_array_equal(result.as_numpy("prob"), prob)
        np.testing.assert_array_equal(result.as_numpy("score"), score)
        assert result.get_response()["id"] == "b-1"
        assert result.get_output("prob")["parameters"] == {"binary_data_size": 20}

        only = client.infer("logit", [tensor], outputs=[triton.InferRequestedOutput("score")])
        assert [o["name"] for o in only.get_response()["outputs"]] == ["score"]
        np.testing.assert_array_equal(only.as_numpy("score"), score)

        ids = np.array([[1, 2, 3], [-(2**62), 5, 2**40]], np.int64)
        labels = np.array([b"fraud", "d\u00e9j\u00e0 vu".encode()], dtype=object)
        id_tensor = triton.InferInput("ids", list(ids.shape), "INT64")
        id_tensor.set_data_from_numpy(ids)
        label_tensor = triton.InferInput("label", list(labels.shape), "BYTES")
        label_tensor.set_data_from_numpy(labels)
        result = client.infer("mixed", [id_tensor, label_tensor])
        total, label_out = sessions["mixed"].run(
            None, {"ids": ids, "label": np.array([v.decode() for v in labels], dtype=object)}
        )
        np.testing.assert_array_equal(result.as_numpy("total"), total)
        assert result.as_numpy("label_out").tolist() == [v.encode() for v in label_out.tolist()]
    finally:
        client.close()


def test_binary_inputs_with_json_outputs_and_json_inputs_with_binary_outputs(server: Server) -> None:
    from tritonclient import http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        x = x_rows(2)
        binary_in = triton.InferInput("x", list(x.shape), "FP32")
        binary_in.set_data_from_numpy(x)
        result = client.infer(
            "logit", [binary_in], outputs=[triton.InferRequestedOutput("prob", binary_data=False)]
        )
        assert "data" in result.get_output("prob")
        np.testing.assert_allclose(result.as_numpy("prob"), expected_prob(x), rtol=1e-5, atol=1e-6)
        json_in = triton.InferInput("x", list(x.shape), "FP32")
        json_in.set_data_from_numpy(x, binary_data=False)
        result = client.infer("logit", [json_in], outputs=[triton.InferRequestedOutput("prob")])
        assert result.get_output("prob")["parameters"] == {"binary_data_size": 8}
        np.testing.assert_allclose(result.as_numpy("prob"), expected_prob(x), rtol=1e-5, atol=1e-6)
    finally:
        client.close()


def test_binary_answer_says_where_the_json_ends(server: Server) -> None:
    framed = binary_request([("x", "FP32", x_rows(3))])
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", "/v2/models/logit/infer", framed.body, framed.headers)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 200
    assert response.getheader("content-type") == "application/octet-stream"
    length = int(response.getheader("inference-header-content-length"))
    header = orjson.loads(body[:length])
    assert [o["parameters"]["binary_data_size"] for o in header["outputs"]] == [12, 12]
    assert len(body) == length + 24
    assert as_result(body, {"inference-header-content-length": str(length)}).as_numpy("prob").shape == (3, 1)


def test_tritonclient_model_config_statistics_and_repository_index(server: Server) -> None:
    from tritonclient import http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        config = client.get_model_config("logit")
        assert (config["name"], config["platform"], config["max_batch_size"]) == (
            "logit",
            "onnxruntime_onnx",
            0,
        )
        assert config["input"] == [
            {"name": "x", "data_type": "TYPE_FP32", "format": "FORMAT_NONE", "dims": [-1, 30]}
        ]
        assert [(o["name"], o["data_type"]) for o in config["output"]] == [
            ("prob", "TYPE_FP32"),
            ("score", "TYPE_FP32"),
        ]
        mixed = client.get_model_config("mixed", "1")
        assert [i["data_type"] for i in mixed["input"]] == ["TYPE_INT64", "TYPE_STRING"]

        before = client.get_inference_statistics("logit")["model_stats"][0]
        x = x_rows(3)
        tensor = triton.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        client.infer("logit", [tensor])
        bad = triton.InferInput("x", [1, 29], "FP32")
        bad.set_data_from_numpy(x_rows(1)[:, :29])
        with pytest.raises(triton.InferenceServerException, match=r"shape \[1, 29\] does not match"):
            client.infer("logit", [bad])
        after = client.get_inference_statistics("logit")["model_stats"][0]
        assert (after["name"], after["version"]) == ("logit", "1")
        stats, old = after["inference_stats"], before["inference_stats"]
        assert stats["success"]["count"] == old["success"]["count"] + 1
        assert stats["fail"]["count"] == old["fail"]["count"] + 1
        assert stats["success"]["ns"] > old["success"]["ns"]
        assert after["inference_count"] == before["inference_count"] + 3
        assert after["execution_count"] == before["execution_count"] + 1
        assert after["last_inference"] >= before["last_inference"]
        assert {b["batch_size"] for b in after["batch_stats"]} >= {3}
        every = client.get_inference_statistics()["model_stats"]
        assert [(m["name"], m["version"]) for m in every] == [("logit", "1"), ("mixed", "1")]
        assert client.get_model_repository_index() == [
            {"name": "logit", "version": "1", "state": "READY"},
            {"name": "mixed", "version": "1", "state": "READY"},
        ]
        assert set(client.get_server_metadata()["extensions"]) >= {"binary_tensor_data", "statistics"}
    finally:
        client.close()
