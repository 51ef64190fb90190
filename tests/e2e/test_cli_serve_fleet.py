"""``stratus serve --gateways 2`` as a user runs it: supervised gateways, admin commands, half-dead fleets.

Real servers and real gateways through the real CLI. Gateway *i* listens on 127.0.0.*i* at one port. A
gateway killed under load costs a client that tries the other gateway on a connection failure nothing,
and the supervisor brings it back with the operator's drains; drain, undrain and weights reach every
gateway (seen in ``x-stratus-site``); with the supervisor killed, ``serve status`` says so and ``serve
stop`` still ends every process.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stratus.processes import free_ports
from stratus.serving.fleet import dns_available
from tests.run_world import one_json, stratus_cli, write_world

pytestmark = pytest.mark.slow

BODY = json.dumps(
    {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32", "data": [0.5] * 30}]}
).encode()


def write_model(path: Path) -> None:
    """A 30-feature logistic model, as a pipeline's export step would write it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = (np.arange(30, dtype=np.float32) / 100.0).reshape(30, 1)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Sigmoid", ["xw"], ["prob"])],
        "logit",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 30])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(weights, "W")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fleet")
    write_world(folder)
    write_model(folder / "logit.onnx")
    return folder


@pytest.fixture(scope="module")
def deployment(world: Path) -> Iterator[dict[str, Any]]:
    port, dns_port = free_ports(2)
    # With the DNS responder in this build, the deployment runs it too (and the first test resolves it).
    dns = ["--dns-port", str(dns_port)] if dns_available() else []
    result = stratus_cli(
        "serve", "logit.onnx", "--sites", "cheap,backup", "--gateways", "2", "--policy", "weighted",
        "--port", str(port), *dns, "--detach", "--json", cwd=world,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    yield one_json(result.stdout)
    stratus_cli("serve", "stop", cwd=world)


def infer(url: str, timeout_s: float = 10) -> tuple[int, str | None]:
    """One inference on a fresh connection: (status, the site that answered)."""
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=timeout_s)
    try:
        conn.request("POST", "/v2/models/logit/infer", BODY, {"content-type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("x-stratus-site")
    finally:
        conn.close()


def sites_seen(urls: list[str], count: int = 40) -> Counter[str]:
    seen: Counter[str] = Counter()
    for i in range(count):
        code, site = infer(urls[i % len(urls)])
        assert code == 200, code
        seen[str(site)] += 1
    return seen


def status(world: Path) -> tuple[int, dict[str, Any]]:
    result = stratus_cli("serve", "status", "--json", cwd=world)
    return result.returncode, one_json(result.stdout)


def wait_status(world: Path, check: Any, what: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        code, payload = status(world)
        if check(code, payload):
            return payload
        assert time.monotonic() < deadline, f"{what}; last status {code}: {payload}"
        time.sleep(0.2)


def all_healthy(code: int, payload: dict[str, Any]) -> bool:
    states = [state for gw in payload.get("gateways", []) for state in _site_states(gw).values()]
    return code == 0 and len(states) == 4 and all(state == "healthy" for state in states)


def _site_states(gateway: dict[str, Any]) -> dict[str, str]:
    return {name: site["state"] for name, site in gateway["sites"].items()}


class FailoverClient:
    """Steady load over both gateways; a request whose gateway does not answer (refused, reset before an
    answer) is sent once to the other gateway, as a client holding both A records would."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.requests = self.failovers = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(4)]

    def __enter__(self) -> FailoverClient:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self, index: int) -> None:
        turn = index
        while not self._stop.is_set():
            first, other = self.urls[turn % 2], self.urls[(turn + 1) % 2]
            turn += 1
            outcome = self._one(first)
            failover = outcome is None
            if failover:
                outcome = self._one(other)
            with self._lock:
                self.requests += 1
                self.failovers += failover
                if outcome != 200:
                    self.failures.append(f"{first} then {other}: {outcome}")

    @staticmethod
    def _one(url: str) -> int | str | None:
        """The status, or None when the gateway did not answer at all (the case to fail over on)."""
        try:
            return infer(url)[0]
        except (ConnectionError, http.client.RemoteDisconnected):
            return None
        except (OSError, http.client.HTTPException) as exc:
            return repr(exc)


def test_two_gateways_on_two_loopback_addresses_both_answer(world: Path, deployment: dict[str, Any]) -> None:
    port = deployment["gateway_port"]
    assert deployment["gateway_urls"] == [f"http://127.0.0.1:{port}", f"http://127.0.0.2:{port}"]
    assert "admin_token" not in deployment
    for url in deployment["gateway_urls"]:
        assert infer(url)[0] == 200
    payload = wait_status(world, all_healthy, "both gateways see both sites healthy")
    assert payload["state"] == "running"
    roles = {"supervisor", "gateway", "server"} | ({"dns"} if dns_available() else set())
    assert {(p["role"], p["state"]) for p in payload["processes"]} == {(role, "running") for role in roles}
    if dns_available():
        assert resolve(payload["dns"]) == {"127.0.0.1", "127.0.0.2"}
    record = (world / ".stratus" / "serve" / "logit" / "deployment.json").read_text()
    token = json.loads(record)["admin_token"]
    shown = stratus_cli("serve", "status", cwd=world)
    assert token not in shown.stdout + shown.stderr
    assert "gateway-2" in shown.stdout
    assert f"127.0.0.2:{port}" in shown.stdout


def test_drain_undrain_and_weights_steer_every_gateway(world: Path, deployment: dict[str, Any]) -> None:
    urls = deployment["gateway_urls"]
    wait_status(world, all_healthy, "both gateways see both sites healthy")
    drained = stratus_cli("serve", "drain", "cheap", cwd=world)
    assert drained.returncode == 0, drained.stderr
    assert "drained cheap on 2 of 2 gateways" in drained.stdout
    assert sites_seen(urls) == Counter(backup=40)
    undrained = stratus_cli("serve", "undrain", "cheap", cwd=world)
    assert undrained.returncode == 0, undrained.stderr
    assert set(sites_seen(urls)) == {"cheap", "backup"}  # 1:1 weights: 40 draws miss one with p = 2^-39
    # A weight of 0 puts a site last: it gets no first attempt while the other is healthy.
    assert stratus_cli("serve", "weights", "cheap=1,backup=0", cwd=world).returncode == 0
    assert sites_seen(urls) == Counter(cheap=40)
    assert stratus_cli("serve", "weights", "cheap=0, backup=2", cwd=world).returncode == 0
    assert sites_seen(urls) == Counter(backup=40)
    assert stratus_cli("serve", "weights", "cheap=1,backup=1", cwd=world).returncode == 0


def test_admin_mistakes_name_the_argument(world: Path, deployment: dict[str, Any]) -> None:
    for args, expected in [
        (("drain", "nowhere"), "SITE: unknown site 'nowhere'; this deployment serves from cheap, backup"),
        (("undrain", "nowhere"), "SITE: unknown site 'nowhere'"),
        (("weights", "cheap"), "WEIGHTS: 'cheap' is not SITE=WEIGHT; expected e.g. cheap=3,backup=2"),
        (("weights", "cheap=-1"), "WEIGHTS: cheap=-1: expected a number >= 0"),
        (("weights", "cheap=1,vault=2"), "WEIGHTS: unknown site 'vault'"),
        (("weights", "cheap=1,cheap=2"), "WEIGHTS: site 'cheap' is given twice"),
    ]:
        result = stratus_cli("serve", *args, cwd=world)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert expected in " ".join(result.stderr.split()), result.stderr
        assert "Traceback" not in result.stderr


def test_a_killed_gateway_costs_a_failover_client_nothing_and_comes_back_configured(
    world: Path, deployment: dict[str, Any]
) -> None:
    urls = deployment["gateway_urls"]
    before = wait_status(world, all_healthy, "both gateways see both sites healthy")
    assert stratus_cli("serve", "drain", "backup", cwd=world).returncode == 0
    victim = before["gateways"][1]
    with FailoverClient(urls) as client:
        time.sleep(1.0)
        os.kill(victim["pid"], signal.SIGKILL)

        def restarted(code: int, payload: dict[str, Any]) -> bool:
            gateway = payload["gateways"][1]
            return (
                gateway["state"] == "running" and gateway["pid"] != victim["pid"] and bool(gateway["sites"])
            )

        after = wait_status(world, restarted, "the supervisor restarts gateway-2")
        time.sleep(1.0)
    assert client.failures == [], client.failures[:5]
    assert client.failovers > 0  # the kill was felt: requests to gateway-2 were refused or cut
    gateway = after["gateways"][1]
    assert gateway["restarts"] == 1
    assert gateway["url"] == victim["url"]  # same address and port: the DNS record stays right
    # The restarted gateway got the operator's drain again (it reads the drain, not only its config).
    settled = wait_status(
        world,
        lambda c, p: _site_states(p["gateways"][1]).get("backup") == "drained",
        "the drain is re-applied",
    )
    assert _site_states(settled["gateways"][0])["backup"] == "drained"
    assert sites_seen([urls[1]], 10) == Counter(cheap=10)
    assert stratus_cli("serve", "undrain", "backup", cwd=world).returncode == 0


def test_a_dead_supervisor_is_reported_and_stop_ends_what_it_left(
    world: Path, deployment: dict[str, Any]
) -> None:
    payload = wait_status(world, all_healthy, "both gateways see both sites healthy")
    pids = [p["pid"] for p in payload["processes"] if p["role"] != "supervisor"]
    assert len(pids) == (5 if dns_available() else 4)
    os.kill(payload["supervisor"]["pid"], signal.SIGKILL)
    half_dead = wait_status(world, lambda c, p: c == 3, "status reports the dead supervisor")
    assert half_dead["state"] == "degraded"
    assert half_dead["supervisor"]["state"] == "dead"
    assert all(p["state"] == "running" for p in half_dead["processes"] if p["role"] != "supervisor")
    assert "nothing restarts a process that dies" in half_dead["problems"][0]
    assert infer(deployment["gateway_urls"][1])[0] == 200  # still serving, unsupervised
    text = stratus_cli("serve", "status", cwd=world)
    assert text.returncode == 3
    assert "degraded" in text.stdout
    assert "supervisor" in text.stdout

    stopped = stratus_cli("serve", "stop", cwd=world)
    assert stopped.returncode == 0, stopped.stderr
    assert "was not running" in stopped.stdout
    for pid in pids:
        assert str(pid) in stopped.stdout
        assert gone(pid), pid
    assert not (world / ".stratus" / "serve" / "logit" / "deployment.json").exists()
    code, after = status(world)
    assert (code, after) == (1, {"running": False})


def resolve(responder: dict[str, Any]) -> set[str]:
    """The deployment's name as a real resolver client gets it from the responder."""
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [responder["host"]], responder["port"]
    return {answer.to_text() for answer in resolver.resolve(responder["name"], "A")}


def test_dns_port_without_the_responder_or_a_name_without_a_port_is_refused(world: Path) -> None:
    if not dns_available():
        result = stratus_cli("serve", "logit.onnx", "--sites", "cheap", "--dns-port", "5353", cwd=world)
        assert result.returncode == 2
        assert (
            "--dns-port: the health-checked DNS responder (stratus.serving.dns) is not part" in result.stderr
        )
    result = stratus_cli("serve", "logit.onnx", "--sites", "cheap", "--dns-name", "x.example.", cwd=world)
    assert result.returncode == 2
    assert "--dns-name" in result.stderr
    assert "--dns-port" in result.stderr


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for a reaper counts: it runs nothing and holds no port)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
