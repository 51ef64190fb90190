"""The V2 gRPC protocol with clients no one here wrote, unchanged: tritonclient.grpc (defaults: raw
tensors) and kserve's InferenceGRPCClient (raw and typed contents), against a model server and through
the gateway; answers equal onnxruntime's, errors carry the REST messages with their gRPC codes; a site
SIGKILLed under gRPC load through the gateway costs no request.

Two sites (model servers with ``--grpc-port``) behind one gateway with a ``grpc`` section. tritonclient
runs in a subprocess (:mod:`tests.integration.grpc_triton_driver`): it cannot share a process with kserve.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
import pytest

from tests.integration.gateway_harness import (
    Gateway,
    free_port,
    metric_sum,
    start_gateway,
    start_server_on,
    wait_for,
)
from tests.integration.serving_harness import ROOT, Server, make_logit, make_mixed, metric_samples, x_rows

# Importing kserve parses the command line (see test_serving_kserve.py).
_argv, sys.argv = sys.argv, sys.argv[:1]
try:
    import kserve
finally:
    sys.argv = _argv

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).with_name("grpc_triton_driver.py")
IDS = np.array([[1, 2, 3], [10, 20, 2**40]], dtype=np.int64)
LABELS = ["fraud", "ok é"]


@dataclass
class World:
    """Two sites' servers (HTTP and gRPC ports each) and the gateway in front of them."""

    folder: Path
    models: dict[str, Path]
    ports: dict[str, tuple[int, int]]
    servers: dict[str, Server] = field(default_factory=dict)
    gateway: Gateway | None = None
    gateway_grpc: int = 0

    def start_site(self, name: str) -> Server:
        http_port, grpc_port = self.ports[name]
        log = self.folder / f"{name}.log"
        self.servers[name] = start_server_on(self.models, log, http_port, "--grpc-port", str(grpc_port))
        return self.servers[name]

    def target(self, which: str) -> str:
        """``host:port`` of the gRPC endpoint of site a's server or of the gateway."""
        port = self.ports["a"][1] if which == "server" else self.gateway_grpc
        return f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("grpc")
    models = {"logit": make_logit(folder / "logit.onnx"), "mixed": make_mixed(folder / "mixed.onnx")}
    world = World(folder, models, {name: (free_port(), free_port()) for name in ("a", "b")})
    try:
        for name in world.ports:
            world.start_site(name)
        world.gateway_grpc = free_port()
        config = {
            "health": {"interval_s": 0.1},
            "grpc": {"port": world.gateway_grpc},
            "sites": [
                {"name": name, "url": f"http://127.0.0.1:{http}", "grpc_port": grpc_port}
                for name, (http, grpc_port) in world.ports.items()
            ],
            "models": {"logit": {}, "mixed": {}},
        }
        world.gateway = start_gateway(config, folder)
        gateway = world.gateway
        wait_for(
            "both sites healthy at the gateway", lambda: gateway.call("GET", "/v2/health/ready")[0] == 200
        )
        yield world
    finally:
        if world.gateway is not None:
            world.gateway.stop()
        for server in world.servers.values():
            if server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait(10)


def ort_run(path: Path, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, Any]:
    """What onnxruntime itself answers for ``inputs``."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def triton(world: World, which: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ``calls`` with tritonclient.grpc in its own process; its answers in order."""
    done = subprocess.run(
        [sys.executable, str(DRIVER), world.target(which)],
        input=json.dumps(calls).encode(),
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    answers: list[dict[str, Any]] = json.loads(done.stdout)
    return answers


@pytest.mark.parametrize("which", ["server", "gateway"])
def test_tritonclient_grpc_defaults(world: World, which: str) -> None:
    x = x_rows(3)
    logit = {"name": "x", "datatype": "FP32", "shape": [3, 30], "data": x.ravel().tolist()}
    ids = {"name": "ids", "datatype": "INT64", "shape": [2, 3], "data": IDS.ravel().tolist()}
    labels = {"name": "label", "datatype": "BYTES", "shape": [2], "data": LABELS}
    narrow = {**logit, "shape": [3, 29], "data": x[:, :29].ravel().tolist()}
    answers = triton(
        world,
        which,
        [
            {"call": "live"},
            {"call": "ready"},
            {"call": "model_ready", "model": "logit"},
            {"call": "model_ready", "model": "nope"},
            {"call": "server_metadata"},
            {"call": "model_metadata", "model": "logit"},
            {"call": "infer", "model": "logit", "inputs": [logit], "id": "t-1"},
            {"call": "infer", "model": "mixed", "inputs": [ids, labels]},
            {"call": "infer", "model": "nope", "inputs": [logit]},
            {"call": "infer", "model": "logit", "inputs": [narrow]},
        ],
    )
    live, ready, model_ready, not_ready, server_meta, model_meta, fp32, mixed, unknown, bad = answers
    assert [live, ready, model_ready, not_ready] == [{"value": v} for v in (True, True, True, False)]
    assert server_meta["value"]["name"] == ("stratus" if which == "server" else "stratus-gateway")
    meta = model_meta["value"]
    assert (meta["name"], meta["versions"], meta["platform"]) == ("logit", ["1"], "onnxruntime_onnx")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": ["-1", "30"]}]

    expected = ort_run(world.models["logit"], {"x": x})
    outputs = fp32["value"]["outputs"]
    assert fp32["value"]["id"] == "t-1"
    assert list(outputs) == ["prob", "score"]
    for name in ("prob", "score"):
        assert outputs[name]["datatype"] == "FP32"
        assert outputs[name]["shape"] == [3, 1]
        assert outputs[name]["data"] == expected[name].ravel().tolist()  # the same float32 values

    expected = ort_run(world.models["mixed"], {"ids": IDS, "label": np.array(LABELS, dtype=object)})
    outputs = mixed["value"]["outputs"]
    assert outputs["total"] == {"datatype": "INT64", "shape": [2], "data": expected["total"].tolist()}
    assert outputs["label_out"] == {"datatype": "BYTES", "shape": [2], "data": LABELS}

    assert unknown["error"]["status"] == "StatusCode.NOT_FOUND"
    where = (
        "the models served here are ['logit', 'mixed']"
        if which == "server"
        else "this gateway routes logit, mixed"
    )
    assert unknown["error"]["message"] == f"unknown model 'nope': {where}"
    assert bad["error"] == {
        "status": "StatusCode.INVALID_ARGUMENT",
        "message": "input 'x': shape [3, 29] does not match the model's [-1, 30] (-1: any size)",
    }


def with_kserve(world: World, which: str, scenario: Callable[[Any], Awaitable[None]]) -> None:
    """Run ``scenario(client)`` with kserve's gRPC client (its own retries off, so errors show)."""

    async def main() -> None:
        client = kserve.InferenceGRPCClient(world.target(which), retries=0, timeout=30)
        try:
            await scenario(client)
        finally:
            await client.close()

    asyncio.run(main())


@pytest.mark.parametrize("which", ["server", "gateway"])
def test_kserve_grpc_client_raw_and_typed_contents(world: World, which: str) -> None:
    x = x_rows(4)
    expected_logit = ort_run(world.models["logit"], {"x": x})
    expected_mixed = ort_run(world.models["mixed"], {"ids": IDS, "label": np.array(LABELS, dtype=object)})

    async def scenario(client: Any) -> None:
        assert await client.is_server_live() is True
        assert await client.is_server_ready() is True
        assert await client.is_model_ready("mixed") is True

        raw = kserve.InferInput("x", list(x.shape), "FP32")
        raw.set_data_from_numpy(x)  # raw_input_contents
        typed = kserve.InferInput("x", list(x.shape), "FP32", data=x.ravel().tolist())  # fp32_contents
        for tensor in (raw, typed):
            response = await client.infer(kserve.InferRequest("logit", [tensor], request_id="k-1"))
            assert response.id == "k-1"
            outputs = {o.name: o.as_numpy() for o in response.outputs}
            np.testing.assert_array_equal(outputs["prob"], expected_logit["prob"])
            np.testing.assert_array_equal(outputs["score"], expected_logit["score"])

        ids = kserve.InferInput("ids", list(IDS.shape), "INT64", data=IDS.ravel().tolist())
        labels = kserve.InferInput("label", [2], "BYTES", data=list(LABELS))
        response = await client.infer(kserve.InferRequest("mixed", [ids, labels]))
        outputs = {o.name: o.as_numpy() for o in response.outputs}
        assert outputs["total"].tolist() == expected_mixed["total"].tolist()
        assert [v.decode() for v in outputs["label_out"]] == LABELS

        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.infer(kserve.InferRequest("nope", [raw]))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert info.value.details().startswith("unknown model 'nope': ")
        wrong = kserve.InferInput("ids", list(IDS.shape), "INT32", data=[1, 2, 3, 4, 5, 6])
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.infer(kserve.InferRequest("mixed", [wrong, labels]))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == "input 'ids': datatype 'INT32' does not match the model's INT64"

        # Over the 16 MiB default message limit: refused from its length, never decoded.
        huge = kserve.InferInput("x", [150_000, 30], "FP32")
        huge.set_data_from_numpy(np.zeros((150_000, 30), np.float32))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.infer(kserve.InferRequest("logit", [huge]))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    with_kserve(world, which, scenario)


def test_server_counts_grpc_calls_by_method_and_status(world: World) -> None:
    server = world.servers["a"]
    route = "/inference.GRPCInferenceService/ModelInfer"
    before = metric_samples(server, "stratus_serving_requests", route=route, code="404").get("total", 0.0)

    async def scenario(client: Any) -> None:
        with pytest.raises(grpc.aio.AioRpcError):
            await client.infer(kserve.InferRequest("nope", [kserve.InferInput("x", [1], "FP32", data=[1.0])]))

    with_kserve(world, "server", scenario)
    after = metric_samples(server, "stratus_serving_requests", route=route, code="404")["total"]
    assert after == before + 1


@dataclass
class GrpcLoad:
    """``workers`` threads sending one ModelInfer after another through the gateway, each on its own
    channel with gRPC's defaults; every outcome is kept (the test requires nothing but OK)."""

    target: str
    request: bytes
    workers: int = 4
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> GrpcLoad:
        for _ in range(self.workers):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self) -> None:
        with grpc.insecure_channel(self.target) as channel:
            infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            while not self._stop.is_set():
                try:
                    infer(self.request, timeout=30)
                except grpc.RpcError as exc:
                    with self._lock:
                        self.failures.append(f"{exc.code()}: {exc.details()}")  # type: ignore[attr-defined]
                    continue
                with self._lock:
                    self.ok += 1

    def done(self) -> int:
        with self._lock:
            return self.ok + len(self.failures)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def test_sigkill_of_a_site_under_grpc_load_fails_no_request(world: World) -> None:
    gateway = world.gateway
    assert gateway is not None
    tensor = kserve.InferInput("x", [2, 30], "FP32")
    tensor.set_data_from_numpy(x_rows(2))
    request = kserve.InferRequest("logit", [tensor]).to_grpc().SerializeToString()
    served_by_b = metric_sum(gateway.metrics(), "stratus_gateway_requests_total", site="b", code="grpc:OK")
    load = GrpcLoad(world.target("gateway"), request).start()
    try:
        wait_for("gRPC load to flow", lambda: load.done() >= 50)
        victim = world.servers["a"]
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        mark = load.done()
        wait_for("requests after the kill", lambda: load.done() >= mark + 150, timeout=60)
        world.start_site("a")
        wait_for("site a back at the gateway", lambda: gateway.state("a") == "healthy", timeout=60)
        mark = load.done()
        wait_for("requests after the restart", lambda: load.done() >= mark + 100, timeout=60)
        time.sleep(0.2)
    finally:
        load.stop()
    assert load.failures == []
    assert load.ok >= 300
    after = metric_sum(gateway.metrics(), "stratus_gateway_requests_total", site="b", code="grpc:OK")
    assert after > served_by_b  # site b took the load while a was down


def test_a_grpc_port_in_use_stops_server_and_gateway_at_start_naming_it(world: World, tmp_path: Path) -> None:
    taken = world.ports["b"][1]  # site b's gRPC listener holds it
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    server = subprocess.run(
        [sys.executable, "-m", "stratus.serving.server", "--model", f"logit={world.models['logit']}",
         "--port", "0", "--grpc-port", str(taken)],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert server.returncode == 1
    assert f"cannot listen for gRPC on 127.0.0.1:{taken} (--grpc-port)" in server.stderr
    assert "Traceback" not in server.stderr
    config = tmp_path / "gateway.json"
    config.write_text(
        json.dumps(
            {
                "grpc": {"port": taken},
                "sites": [{"name": "a", "url": f"http://127.0.0.1:{world.ports['a'][0]}", "grpc_port": 1}],
                "models": {"logit": {}},
            }
        )
    )
    gateway = subprocess.run(
        [sys.executable, "-m", "stratus.serving.gateway", "--config", str(config), "--port", "0"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert gateway.returncode == 1
    assert f"cannot listen for gRPC on 127.0.0.1:{taken} (the config's grpc.port)" in gateway.stderr
