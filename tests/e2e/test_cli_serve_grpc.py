"""``stratus serve --grpc-port`` as a user runs it: the V2 gRPC protocol at every gateway, routed to the
servers' own gRPC ports, with kserve's gRPC client unchanged; the record says where gRPC listens.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
import pytest

from stratus.processes import free_ports
from tests.e2e.test_cli_serve_fleet import write_model
from tests.run_world import one_json, stratus_cli, write_world

# Importing kserve parses the command line (see tests/integration/test_serving_kserve.py).
_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve
finally:
    sys.argv = _argv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("grpc-fleet")
    write_world(folder)
    write_model(folder / "logit.onnx")
    port, grpc_port = free_ports(2)
    result = stratus_cli(
        "serve", "logit.onnx", "--sites", "cheap,backup", "--gateways", "2",
        "--port", str(port), "--grpc-port", str(grpc_port), "--detach", "--json", cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    try:
        yield folder, one_json(result.stdout)
    finally:
        stratus_cli("serve", "stop", cwd=folder)


def test_every_gateway_serves_grpc_from_the_sites_grpc_ports(world: tuple[Path, dict[str, Any]]) -> None:
    folder, deployment = world
    grpc_port = deployment["grpc_port"]
    site_ports = {site["grpc_port"] for site in deployment["sites"].values()}
    assert len(site_ports) == 2
    assert None not in site_ports
    assert grpc_port not in site_ports
    x = np.linspace(-1, 1, 60, dtype=np.float32).reshape(2, 30)
    session = ort.InferenceSession(str(folder / "logit.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(["prob"], {"x": x})[0]

    async def main() -> None:
        for gateway in deployment["gateways"]:
            client = kserve.InferenceGRPCClient(f"{gateway['host']}:{grpc_port}", retries=0, timeout=30)
            try:
                assert await client.is_server_ready() is True
                tensor = kserve.InferInput("x", [2, 30], "FP32")
                tensor.set_data_from_numpy(x)
                response = await client.infer(kserve.InferRequest("logit", [tensor]))
                np.testing.assert_array_equal(response.outputs[0].as_numpy(), expected)
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await client.infer(kserve.InferRequest("other", [tensor]))
                assert info.value.code() == grpc.StatusCode.NOT_FOUND
                assert info.value.details() == "unknown model 'other': this gateway routes logit"
            finally:
                await client.close()

    asyncio.run(main())
