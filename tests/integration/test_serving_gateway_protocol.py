"""The whole protocol through the gateway, as at a server: tritonclient's defaults (binary tensors),
Triton's model configuration, statistics and repository index, and one status and error body per mistake.

Two model servers (sites a and b) serve the same models; the gateway routes both models to both. Every
answer is compared with what onnxruntime (for inference) or a server (for errors) gives directly.
"""

from __future__ import annotations

import http.client
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.integration.gateway_harness import Fleet, Gateway, start_gateway, wait_for
from tests.integration.serving_harness import make_logit, make_mixed, x_rows

pytestmark = pytest.mark.slow

MAX_BODY = 65536


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {"logit": make_logit(folder / "logit.onnx"), "mixed": make_mixed(folder / "mixed.onnx")}


@pytest.fixture(scope="module")
def fleet(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    handle = Fleet(models, tmp_path_factory.mktemp("fleet"), ["a", "b"], "--max-body-bytes", str(MAX_BODY))
    yield handle
    handle.stop_all()


@pytest.fixture(scope="module")
def gateway(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = {
        "sites": [{"name": name, "url": fleet.url(name)} for name in ("a", "b")],
        "models": {"logit": {"policy": "weighted"}, "mixed": {"policy": "weighted"}},
        "limits": {"max_body_bytes": MAX_BODY},
    }
    handle = start_gateway(config, tmp_path_factory.mktemp("gateway"))
    wait_for(
        "both sites healthy",
        lambda: all(s["state"] == "healthy" for s in handle.sites().values()),
    )
    yield handle
    assert handle.stop() == 0


@pytest.fixture(scope="module")
def sessions(models: dict[str, Path]) -> dict[str, Any]:
    import onnxruntime as ort

    return {name: ort.InferenceSession(str(path)) for name, path in models.items()}


def test_tritonclient_defaults_through_the_gateway_equal_onnxruntime(
    gateway: Gateway, sessions: dict[str, Any]
) -> None:
    from tritonclient import http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{gateway.port}")
    try:
        for rows in (1, 4, 64):
            x = x_rows(rows)
            tensor = triton.InferInput("x", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            result = client.infer("logit", [tensor], outputs=[triton.InferRequestedOutput("prob")])
            (prob,) = sessions["logit"].run(["prob"], {"x": x})
            np.testing.assert_array_equal(result.as_numpy("prob"), prob)
        ids = np.array([[7, 8, 9]], np.int64)
        labels = np.array(["\u00fcber".encode()], dtype=object)
        id_tensor = triton.InferInput("ids", [1, 3], "INT64")
        id_tensor.set_data_from_numpy(ids)
        label_tensor = triton.InferInput("label", [1], "BYTES")
        label_tensor.set_data_from_numpy(labels)
        result = client.infer("mixed", [id_tensor, label_tensor])
        total, label_out = sessions["mixed"].run(None, {"ids": ids, "label": np.array(["\u00fcber"], object)})
        np.testing.assert_array_equal(result.as_numpy("total"), total)
        assert result.as_numpy("label_out").tolist() == [label_out[0].encode()]
        # JSON mode keeps working through the gateway too.
        json_in = triton.InferInput("x", [2, 30], "FP32")
        x = x_rows(2)
        json_in.set_data_from_numpy(x, binary_data=False)
        wanted = [triton.InferRequestedOutput("score", binary_data=False)]
        result = client.infer("logit", [json_in], outputs=wanted)
        np.testing.assert_allclose(
            result.as_numpy("score"), sessions["logit"].run(["score"], {"x": x})[0], rtol=1e-6
        )
    finally:
        client.close()


def test_config_index_and_statistics_summed_over_sites(gateway: Gateway, fleet: Fleet) -> None:
    from tritonclient import http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{gateway.port}")
    direct = triton.InferenceServerClient(url=f"127.0.0.1:{fleet.ports['a']}")
    try:
        assert client.get_model_config("mixed") == direct.get_model_config("mixed")
        assert client.get_model_repository_index() == [
            {"name": "logit", "state": "READY"},
            {"name": "mixed", "state": "READY"},
        ]
        assert "statistics" in client.get_server_metadata()["extensions"]
        x = x_rows(2)
        tensor = triton.InferInput("x", [2, 30], "FP32")
        tensor.set_data_from_numpy(x)
        for _ in range(30):  # weighted over two sites: both surely serve some
            client.infer("logit", [tensor])
        per_site = {}
        for name, port in fleet.ports.items():
            site = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
            per_site[name] = site.get_inference_statistics("logit")["model_stats"][0]
            site.close()
        summed = client.get_inference_statistics("logit")["model_stats"][0]
        successes = [s["inference_stats"]["success"]["count"] for s in per_site.values()]
        assert all(successes), per_site
        assert summed["inference_stats"]["success"]["count"] == sum(successes)
        assert summed["inference_count"] == sum(s["inference_count"] for s in per_site.values())
        assert summed["last_inference"] == max(s["last_inference"] for s in per_site.values())
        status, _, headers = gateway.call_with_headers("GET", "/v2/models/logit/versions/1/stats")
        assert (status, headers["x-stratus-site"]) == (200, "a,b")
        every = client.get_inference_statistics()["model_stats"]
        assert [m["name"] for m in every] == ["logit", "mixed"]
    finally:
        client.close()
        direct.close()


# -- one status and one error body per mistake ----------------------------------------------------------

X = x_rows(1)


def _json(doc: Any) -> bytes:
    return orjson.dumps(doc)


def _binary(
    entries: list[dict[str, Any]], data: bytes, length_delta: int = 0
) -> tuple[bytes, dict[str, str]]:
    header = _json({"inputs": entries})
    return header + data, {"Inference-Header-Content-Length": str(len(header) + length_delta)}


def _x_entry(size: int, shape: list[int] | None = None) -> dict[str, Any]:
    return {
        "name": "x",
        "datatype": "FP32",
        "shape": shape or [1, 30],
        "parameters": {"binary_data_size": size},
    }


def _json_x(**overrides: Any) -> bytes:
    entry = {"name": "x", "shape": [1, 30], "datatype": "FP32", "data": X.ravel().tolist(), **overrides}
    return _json({"inputs": [entry]})


INFER = "/v2/models/logit/infer"
# (id, method, path, body, headers, expected status)
CORPUS: list[tuple[str, str, str, bytes, dict[str, str], int]] = [
    ("malformed-json", "POST", INFER, b'{"inputs": [', {}, 400),
    ("not-utf8-without-header", "POST", INFER, b"\xff\xfe\x00\x01", {}, 400),
    ("not-an-object", "POST", INFER, b"[1, 2]", {}, 400),
    ("no-inputs", "POST", INFER, _json({"inputs": []}), {}, 400),
    ("wrong-dtype", "POST", INFER, _json_x(datatype="FP64"), {}, 400),
    ("wrong-shape", "POST", INFER, _json_x(shape=[1, 29]), {}, 400),
    ("wrong-count", "POST", INFER, _json_x(data=[0.5] * 29), {}, 400),
    ("unknown-input", "POST", INFER, _json_x(name="y"), {}, 400),
    ("unknown-output", "POST", INFER, _json({"inputs": [], "outputs": [{"name": "z"}]}), {}, 400),
    ("header-past-body", "POST", INFER, *_binary([_x_entry(120)], X.tobytes(), length_delta=200), 400),
    ("header-not-a-number", "POST", INFER, _json_x(), {"Inference-Header-Content-Length": "12a"}, 400),
    ("header-negative", "POST", INFER, _json_x(), {"Inference-Header-Content-Length": "-1"}, 400),
    ("size-vs-shape", "POST", INFER, *_binary([_x_entry(116)], X.tobytes()[:116]), 400),
    ("size-past-data", "POST", INFER, *_binary([_x_entry(120)], X.tobytes()[:100]), 400),
    ("unclaimed-bytes", "POST", INFER, *_binary([_x_entry(120)], X.tobytes() + b"\0\0"), 400),
    ("negative-size", "POST", INFER, *_binary([_x_entry(-120)], X.tobytes()), 400),
    ("size-without-header", "POST", INFER, _json({"inputs": [_x_entry(120)]}), {}, 400),
    (
        "bytes-element-overrun",
        "POST",
        "/v2/models/mixed/infer",
        *_binary(
            [
                {"name": "ids", "datatype": "INT64", "shape": [1, 3], "data": [1, 2, 3]},
                {"name": "label", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}},
            ],
            struct.pack("<I", 50) + b"ab",
        ),
        400,
    ),
    ("unknown-model-infer", "POST", "/v2/models/nope/infer", _json_x(), {}, 404),
    ("unknown-model-metadata", "GET", "/v2/models/nope", b"", {}, 404),
    ("unknown-model-config", "GET", "/v2/models/nope/config", b"", {}, 404),
    ("unknown-model-stats", "GET", "/v2/models/nope/stats", b"", {}, 404),
    ("unknown-version-infer", "POST", "/v2/models/logit/versions/9/infer", _json_x(), {}, 404),
    ("unknown-version-config", "GET", "/v2/models/logit/versions/9/config", b"", {}, 404),
    ("no-such-route", "GET", "/v2/models/logit/explain", b"", {}, 404),
    ("no-model-named", "GET", "/v2/models", b"", {}, 404),
    ("wrong-method", "GET", INFER, b"", {}, 405),
    ("wrong-method-unknown-model", "DELETE", "/v2/models/nope", b"", {}, 405),
    ("oversize", "POST", INFER, b" " * (MAX_BODY + 1), {}, 413),
]


def _ask(port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        kept = {k: response.getheader(k) for k in ("content-type", "allow")}
        return response.status, orjson.loads(data), kept
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [pytest.param(*case[1:], id=case[0]) for case in CORPUS],
)
def test_a_bad_request_gets_the_same_status_and_body_at_a_server_and_through_the_gateway(
    fleet: Fleet, gateway: Gateway, method: str, path: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    direct = _ask(fleet.ports["a"], method, path, body, headers)
    through = _ask(gateway.port, method, path, body, headers)
    assert direct[0] == status, direct
    assert list(direct[1]) == ["error"], direct
    assert direct[1]["error"], direct
    if status == 413:
        # Refused by whichever hop reads it first, from Content-Length: the message names that hop.
        assert through[1]["error"] == direct[1]["error"].replace("the model server's", "the gateway's")
        through = (through[0], direct[1], through[2])
    assert through == direct
