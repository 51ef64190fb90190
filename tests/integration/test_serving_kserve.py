"""KServe's own V2 REST client, unchanged, against the real server process and through the gateway.

``kserve.InferenceRESTClient(RESTConfig(protocol="v2"))`` is asynchronous (httpx), so each test drives it
with ``asyncio.run``. Its REST client has no model-metadata call (only health, readiness and infer), so
metadata is covered by the tritonclient test in test_serving_server.py. Its ``set_data_from_numpy``
sends binary tensor data by default, and it reads binary outputs when asked for them.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.gateway_harness import Gateway, start_gateway, wait_for
from tests.integration.serving_harness import (
    Server,
    expected_prob,
    expected_score,
    make_logit,
    make_mixed,
    start_server,
    stop,
    x_rows,
)

# Importing kserve parses the process's command line (kserve/model_server.py calls parse_known_args() at
# import), and pytest's own options can make that exit: `pytest --co` is an ambiguous abbreviation of its
# --configure_logging. Hence the import with a bare argv.
_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve  # a dev dependency: the test must fail, not skip, when it is broken
finally:
    sys.argv = _argv
import httpx  # noqa: E402  (kserve's own HTTP client)

# Not re-exported at the top of the package like InferRequest and InferInput are.
RequestedOutput = kserve.protocol.infer_type.RequestedOutput

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("models")
    models = {"logit": make_logit(folder / "logit.onnx"), "mixed": make_mixed(folder / "mixed.onnx")}
    handle = start_server(models, folder / "server.log")
    yield handle
    stop(handle)


@pytest.fixture(scope="module")
def gateway(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The gateway in front of the server, routing both models."""
    site = {"name": "a", "url": f"http://127.0.0.1:{server.port}"}
    handle = start_gateway(
        {"sites": [site], "models": {"logit": {}, "mixed": {}}}, tmp_path_factory.mktemp("gateway")
    )
    wait_for("the gateway ready", lambda: handle.call("GET", "/v2/health/ready")[0] == 200)
    yield handle
    assert handle.stop() == 0


def with_client(server: Server | Gateway, scenario: Callable[[Any, str], Awaitable[None]]) -> None:
    """Run ``scenario(client, base_url)`` with a fresh V2 REST client, closed afterwards."""

    async def main() -> None:
        client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", timeout=30))
        try:
            await scenario(client, f"http://127.0.0.1:{server.port}")
        finally:
            await client.close()

    asyncio.run(main())


def test_health_and_readiness(server: Server) -> None:
    async def scenario(client: Any, base_url: str) -> None:
        assert await client.is_server_live(base_url) is True
        assert await client.is_server_ready(base_url) is True
        assert await client.is_model_ready(base_url, "logit") is True
        # V2: a model that is not ready is a 4xx, which this client reads as False.
        assert await client.is_model_ready(base_url, "nope") is False

    with_client(server, scenario)


def test_infer_fp32_with_id_and_requested_output(server: Server) -> None:
    x = x_rows(4)

    async def scenario(client: Any, base_url: str) -> None:
        tensor = kserve.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=False)
        request = kserve.InferRequest(
            model_name="logit",
            infer_inputs=[tensor],
            request_id="k-1",
            request_outputs=[RequestedOutput("score")],
        )
        response = await client.infer(base_url, request, model_name="logit")
        assert response.id == "k-1"
        assert response.model_name == "logit"
        assert [o.name for o in response.outputs] == ["score"]
        np.testing.assert_allclose(response.outputs[0].as_numpy(), expected_score(x), rtol=1e-5, atol=1e-6)

        # Without requested outputs: all of them, in the model's order.
        plain = kserve.InferInput("x", list(x.shape), "FP32")
        plain.set_data_from_numpy(x, binary_data=False)
        response = await client.infer(base_url, kserve.InferRequest("logit", [plain]), model_name="logit")
        outputs = {o.name: o.as_numpy() for o in response.outputs}
        assert list(outputs) == ["prob", "score"]
        np.testing.assert_allclose(outputs["prob"], expected_prob(x), rtol=1e-5, atol=1e-6)

    with_client(server, scenario)


def test_infer_int64_and_bytes(server: Server) -> None:
    ids = np.array([[1, 2, 3], [10, 20, 2**40]], dtype=np.int64)
    labels = np.array(["fraud", "ok"], dtype=object)

    async def scenario(client: Any, base_url: str) -> None:
        id_tensor = kserve.InferInput("ids", list(ids.shape), "INT64")
        id_tensor.set_data_from_numpy(ids, binary_data=False)
        label_tensor = kserve.InferInput("label", list(labels.shape), "BYTES")
        label_tensor.set_data_from_numpy(labels, binary_data=False)
        request = kserve.InferRequest("mixed", [id_tensor, label_tensor])
        response = await client.infer(base_url, request, model_name="mixed")
        outputs = {o.name: o for o in response.outputs}
        assert outputs["total"].as_numpy().tolist() == ids.sum(axis=1).tolist()
        assert outputs["label_out"].datatype == "BYTES"
        assert outputs["label_out"].data == ["fraud", "ok"]

    with_client(server, scenario)


def test_bad_request_surfaces_the_servers_message(server: Server) -> None:
    x = x_rows(1)[:, :29]

    async def scenario(client: Any, base_url: str) -> None:
        tensor = kserve.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=False)
        with pytest.raises(httpx.HTTPStatusError) as info:
            await client.infer(base_url, kserve.InferRequest("logit", [tensor]), model_name="logit")
        assert info.value.response.status_code == 400
        # The client puts the server's {"error": ...} text into its exception message.
        assert "input 'x': shape [1, 29] does not match the model's [-1, 30]" in str(info.value)

    with_client(server, scenario)


def test_base_url_with_a_trailing_slash(server: Server) -> None:
    # The client joins paths onto the base URL it is given; the server must see the same routes.
    async def scenario(client: Any, base_url: str) -> None:
        assert await client.is_server_live(base_url + "/") is True
        assert await client.is_model_ready(base_url + "/", "mixed") is True

    with_client(server, scenario)


@pytest.mark.parametrize("hop", ["server", "gateway"])
def test_binary_tensors_both_ways_equal_onnxruntime(
    server: Server, gateway: Gateway, hop: str, tmp_path: Path
) -> None:
    """kserve's defaults: set_data_from_numpy(x) sends binary; outputs asked with binary_data come back
    as bytes after the JSON, which the client decodes itself; answers equal onnxruntime's."""
    import onnxruntime as ort

    x = x_rows(3)
    ids = np.array([[4, 5, 6]], np.int64)
    labels = np.array(["caf\u00e9"], dtype=object)
    logit = ort.InferenceSession(str(make_logit(tmp_path / "logit.onnx")))
    mixed = ort.InferenceSession(str(make_mixed(tmp_path / "mixed.onnx")))

    async def scenario(client: Any, base_url: str) -> None:
        tensor = kserve.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)  # binary_data=True is the default
        wanted = [RequestedOutput("prob", parameters={"binary_data": True})]
        request = kserve.InferRequest("logit", [tensor], request_id="k-b", request_outputs=wanted)
        response = await client.infer(base_url, request, model_name="logit")
        assert response.id == "k-b"
        (prob,) = logit.run(["prob"], {"x": x})
        np.testing.assert_array_equal(response.outputs[0].as_numpy(), prob)

        id_tensor = kserve.InferInput("ids", list(ids.shape), "INT64")
        id_tensor.set_data_from_numpy(ids)
        label_tensor = kserve.InferInput("label", list(labels.shape), "BYTES")
        label_tensor.set_data_from_numpy(labels)
        outputs = [RequestedOutput(n, parameters={"binary_data": True}) for n in ("total", "label_out")]
        request = kserve.InferRequest("mixed", [id_tensor, label_tensor], request_outputs=outputs)
        response = await client.infer(base_url, request, model_name="mixed")
        got = {o.name: o.as_numpy() for o in response.outputs}
        total, label_out = mixed.run(None, {"ids": ids, "label": labels})
        np.testing.assert_array_equal(got["total"], total)
        assert [
            v.decode() if isinstance(v, bytes) else v for v in got["label_out"].tolist()
        ] == label_out.tolist()

    with_client(server if hop == "server" else gateway, scenario)
