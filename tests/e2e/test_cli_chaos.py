"""``stratus chaos kill-site --scope storage|site --for S`` as a user runs it, on the sandbox's real stores.

`stratus sandbox up` starts SeaweedFS (S3), fake-gcs-server and Azurite and writes a platform file whose
sites store to them. The storage drill kills the S3 site's server for a window (checked from outside:
its port refuses connections while the drill runs), brings it back on the same port and data, and every
object written before is read back with the same SHA-256. The whole-site drill serves a model from two
sandbox sites, takes one site's store and server down at once under load, and must see no client failure,
the site ejected, and the site back in rotation after the window.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stratus.processes import free_ports
from stratus.sandbox.wan import wan_unavailable_reason
from stratus.storage import open_store
from tests.run_world import cli_env, one_json, stratus_cli

pytestmark = pytest.mark.slow


def _onnx_model(path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = (np.arange(4, dtype=np.float32) / 10.0).reshape(4, 1)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(weights, "W")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("chaos")
    up = stratus_cli("sandbox", "up", "--platform-out", "stratus.yaml", "--json", cwd=folder, timeout=180)
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        yield folder
    finally:
        stratus_cli("serve", "stop", cwd=folder)
        stratus_cli("sandbox", "down", "--platform-out", "stratus.yaml", cwd=folder, timeout=60)


def _site(folder: Path, name: str) -> dict[str, Any]:
    site: dict[str, Any] = yaml.safe_load((folder / "stratus.yaml").read_text())["sites"][name]
    return site


def _port(site: dict[str, Any]) -> int:
    return int(site["storage_options"]["endpoint_url"].rsplit(":", 1)[1])


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def test_storage_scope_takes_the_store_down_for_the_window_and_back_intact(sandbox: Path) -> None:
    site = _site(sandbox, "aws-us-east")
    store = open_store("aws-us-east", site["storage"], site["storage_options"])
    payloads = [os.urandom(size) for size in (10, 70_000, 300_000)]
    hashes = []
    for i, data in enumerate(payloads):
        local = sandbox / f"object-{i}.bin"
        local.write_bytes(data)
        hashes.append(store.publish(local).sha256)
    port = _port(site)
    drill = subprocess.Popen(
        [sys.executable, "-m", "stratus", "chaos", "kill-site", "aws-us-east", "--scope", "storage",
         "--for", "2", "--json"],
        cwd=sandbox, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen_down = False
    deadline = time.monotonic() + 30
    while drill.poll() is None and time.monotonic() < deadline and not seen_down:
        seen_down = _refuses(port)
        time.sleep(0.05)
    stdout, stderr = drill.communicate(timeout=120)
    report = one_json(stdout)
    assert drill.returncode == 0, (json.dumps(report), stderr)
    assert seen_down, "the S3 server's port never refused connections while the drill ran"
    outage = report["store"]
    assert outage["kind"] == "s3"
    assert outage["refused_while_down"] is True
    assert outage["intact"] is True
    assert outage["objects_after"] == outage["objects_before"] >= 3
    assert outage["pid_after"] != outage["pid_killed"]
    assert report["killed"] == [
        {
            "role": "store",
            "name": "s3",
            "pid": outage["pid_killed"],
            "url": site["storage_options"]["endpoint_url"],
        }
    ]
    # Back on the same port with the same data: every object reads back with the hash it was written with.
    again = open_store("aws-us-east", site["storage"], site["storage_options"])
    for sha, data in zip(hashes, payloads, strict=True):
        fetched = sandbox / f"fetched-{sha[:8]}"
        again.fetch(sha, fetched)
        assert hashlib.sha256(fetched.read_bytes()).hexdigest() == sha == hashlib.sha256(data).hexdigest()
    status = one_json(
        stratus_cli("sandbox", "status", "--platform-out", "stratus.yaml", "--json", cwd=sandbox).stdout
    )
    assert status["servers"]["s3"]["up"] is True
    assert status["servers"]["s3"]["pid"] == outage["pid_after"]  # the state file follows the new PID


def test_a_folder_store_is_refused_with_the_reason(tmp_path: Path) -> None:
    lab = {"provider": "onprem", "region": "eu-lab", "jurisdiction": "EU", "storage": "file://sites/lab"}
    (tmp_path / "stratus.yaml").write_text(yaml.safe_dump({"sites": {"lab": lab}}))
    result = stratus_cli("chaos", "kill-site", "lab", "--scope", "storage", "--for", "1", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--scope" in result.stderr
    assert "file://sites/lab, a local folder: there is no store server to stop" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def deployment(sandbox: Path) -> Iterator[dict[str, Any]]:
    _onnx_model(sandbox / "tiny.onnx")
    (port,) = free_ports(1)
    result = stratus_cli(
        "serve", "tiny.onnx", "--sites", "aws-us-east,gcp-eu-west", "--port", port, "--detach", "--json",
        cwd=sandbox,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    yield one_json(result.stdout)
    stratus_cli("serve", "stop", cwd=sandbox)


def test_site_scope_takes_store_and_server_down_under_load_and_brings_them_back(
    sandbox: Path, deployment: dict[str, Any]
) -> None:
    before = deployment["sites"]["aws-us-east"]["pid"]
    result = stratus_cli(
        "chaos", "kill-site", "aws-us-east", "--scope", "site", "--for", "2", "--json", cwd=sandbox
    )
    report = one_json(result.stdout)
    assert result.returncode == 0, report
    assert report["requests"] > 0
    assert report["failures"] == 0, report["failure_samples"]
    assert {k["role"]: k["pid"] for k in report["killed"]}["server"] == before
    assert {k["role"] for k in report["killed"]} == {"store", "server"}
    assert any("gateways are not per-site" in note for note in report["notes"])
    assert report["ejected_after_s"] is not None
    # Held down for the window: the supervisor restarted the server only after it, not within a second.
    assert report["restarted_after_s"] >= 2
    assert report["back_after_window_s"] is not None
    assert report["store"]["intact"] is True
    assert report["store"]["refused_while_down"] is True
    status = one_json(stratus_cli("serve", "status", "--json", cwd=sandbox).stdout)
    assert status["sites"]["aws-us-east"]["pid"] != before
    assert status["sites"]["aws-us-east"]["restarts"] == 1


_WAN = wan_unavailable_reason()
needs_namespaces = pytest.mark.skipif(_WAN is not None, reason=f"no network namespaces here: {_WAN}")


@needs_namespaces
def test_partition_cuts_a_namespaced_copy_of_the_site_off_and_heals_it(
    sandbox: Path, deployment: dict[str, Any]
) -> None:
    before = one_json(stratus_cli("serve", "status", "--json", cwd=sandbox).stdout)
    pids = {name: s["pid"] for name, s in before["sites"].items()}
    assert set(pids) == set(deployment["sites"])
    result = stratus_cli("chaos", "partition", "gcp-eu-west", "--for", "2", "--json", cwd=sandbox)
    report = one_json(result.stdout)
    assert result.returncode == 0, report
    assert report["requests"] > 0
    assert report["failures"] == 0, report["failure_samples"]
    [link] = report["killed"]
    assert link["role"] == "link"
    assert link["url"].startswith("http://10.77.0.")  # the copy inside its namespace, not the deployment
    assert report["ejected_after_s"] is not None
    assert report["back_after_window_s"] is not None
    status = one_json(stratus_cli("serve", "status", "--json", cwd=sandbox).stdout)
    assert {name: s["pid"] for name, s in status["sites"].items()} == pids  # the deployment was not touched


@needs_namespaces
def test_delay_slows_the_site_link_for_the_window(sandbox: Path, deployment: dict[str, Any]) -> None:
    result = stratus_cli("chaos", "delay", "gcp-eu-west", "--ms", "100", "--for", "2", "--json", cwd=sandbox)
    report = one_json(result.stdout)
    assert result.returncode == 0, report
    assert report["failures"] == 0, report["failure_samples"]
    assert report["signal"] == "delay +100 ms each way"
    assert report["probe_during_ms"] >= 2 * 100  # a round trip on the slowed link cannot beat twice the delay


def test_delay_without_a_deployment_says_how_to_start_one(tmp_path: Path) -> None:
    lab = {"provider": "onprem", "region": "eu-lab", "jurisdiction": "EU", "storage": "file://sites/lab"}
    (tmp_path / "stratus.yaml").write_text(yaml.safe_dump({"sites": {"lab": lab}}))
    result = stratus_cli("chaos", "delay", "lab", "--ms", "0", "--for", "1", cwd=tmp_path)
    assert result.returncode in (1, 2), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    if _WAN is None:
        assert "--ms: 0.0 is not a delay; expected milliseconds above 0" in result.stderr
    else:
        assert "needs network namespaces" in result.stderr
