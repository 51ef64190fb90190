"""``stratus serve`` and ``stratus chaos kill-site`` as a user runs them, on a run's real ONNX artifact.

A pipeline step writes a small logistic ONNX model; the run replicates it; `serve --detach` starts a
real model server per site and the real gateway; requests go through the gateway; the drill kills a
site's server (SIGKILL, then SIGTERM) under load and must see zero client failures; `serve stop` ends it.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stratus.processes import free_ports
from tests.run_world import one_json, pipeline, platform, stratus_cli, write_world

pytestmark = pytest.mark.slow

EXPORT_STEP = """

def export(ctx):
    import numpy as np
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, str(ctx.output("model")))
"""


def expected(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    weights = (np.arange(30, dtype=np.float32) / 100.0).reshape(30, 1)
    return 1.0 / (1.0 + np.exp(-(x @ weights)))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = pipeline()
    spec["steps"]["export"] = {
        "run": "flow_steps:export",
        "inputs": ["square.squares"],
        "outputs": {"model": {"size_gb": 0.001}},
        "estimated_hours": 0.1,
        "replicate": ["backup"],
        "register": {"model": "flow-logit", "aliases": ["champion"]},
    }
    sites = platform()
    sites["sites"]["us"] = {**sites["sites"]["backup"], "jurisdiction": "US", "storage": "file://sites/us"}
    sites["sites"]["us"]["region"] = "dc-us"
    # An EU site that holds nothing until a model is served from it.
    sites["sites"]["spare"] = {**sites["sites"]["backup"], "storage": "file://sites/spare"}
    sites["sites"]["spare"]["region"] = "dc-spare"
    # An EU site that keeps registered models' bytes (registry.artifacts) and nothing else.
    sites["sites"]["archive"] = {**sites["sites"]["backup"], "storage": "file://sites/archive"}
    sites["sites"]["archive"]["region"] = "dc-archive"
    # The embedded store may hold the EU-resident model; archive keeps a copy of its bytes too.
    sites["registry"] = {"jurisdiction": "EU", "artifacts": "archive"}
    folder = tmp_path_factory.mktemp("serve")
    world = write_world(folder, pipeline_spec=spec, platform_spec=sites)
    steps = folder / "flow_steps.py"
    steps.write_text(steps.read_text() + EXPORT_STEP)
    result = stratus_cli("run", world, "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    return world


@pytest.fixture(scope="module")
def deployment(world: Path) -> Iterator[dict[str, Any]]:
    (port,) = free_ports(1)
    result = stratus_cli(
        "serve", "export.model", "--sites", "cheap,backup", "--port", port, "--detach", "--json",
        cwd=world.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    payload = one_json(result.stdout)
    yield payload
    stratus_cli("serve", "stop", cwd=world.parent)


def infer(url: str, model: str, x: np.ndarray[Any, Any]) -> tuple[int, dict[str, Any], str | None]:
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    conn.request("POST", f"/v2/models/{model}/infer", json.dumps(body))
    response = conn.getresponse()
    payload = json.loads(response.read())
    site = response.getheader("x-stratus-site")
    conn.close()
    return response.status, payload, site


def status(world: Path) -> tuple[int, dict[str, Any]]:
    result = stratus_cli("serve", "status", "--json", cwd=world.parent)
    return result.returncode, one_json(result.stdout)


def wait_all_healthy(world: Path, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        code, payload = status(world)
        states = {name: s["gateway"].get("state") for name, s in payload.get("sites", {}).items()}
        if code == 0 and states and all(state == "healthy" for state in states.values()):
            return payload
        assert time.monotonic() < deadline, f"sites not all healthy: {states}"
        time.sleep(0.2)


def test_serve_starts_a_server_per_site_behind_one_gateway(world: Path, deployment: dict[str, Any]) -> None:
    assert set(deployment["sites"]) == {"cheap", "backup"}
    assert deployment["model"] == "flow"
    assert "admin_token" not in deployment  # the token stays in the owner-only record file
    x = np.random.default_rng(3).normal(size=(4, 30)).astype(np.float32)
    code, answer, _ = infer(deployment["gateway_url"], "flow", x)
    assert code == 200, answer
    [prob] = answer["outputs"]
    np.testing.assert_allclose(np.array(prob["data"]).reshape(4, 1), expected(x), rtol=1e-5)
    payload = wait_all_healthy(world)
    assert payload["running"] is True
    # Each site's server reads the model from its own store: the replica the run wrote there.
    paths = {s["model_path"] for s in payload["sites"].values()}
    assert len(paths) == 2


def test_the_files_holding_the_admin_token_are_owner_only(deployment: dict[str, Any]) -> None:
    """gateway.json and deployment.json hold the admin token: 0600 in a 0700 folder, created so (the
    temporaries are made 0600 before a byte is written), never written readable and narrowed after."""
    folder = Path(deployment["folder"])
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("gateway.json", "deployment.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    assert not list(folder.glob(".*.tmp"))  # no temporary left behind


def test_a_client_mistake_is_passed_back_as_a_400(deployment: dict[str, Any]) -> None:
    code, answer, _ = infer(deployment["gateway_url"], "flow", np.zeros((1, 29), dtype=np.float32))
    assert code == 400
    assert "x" in answer["error"]


@pytest.mark.parametrize("signal_name", ["KILL", "TERM"])
def test_chaos_kill_site_heals_with_no_client_failure(
    world: Path, deployment: dict[str, Any], signal_name: str
) -> None:
    wait_all_healthy(world)
    site = "cheap" if signal_name == "KILL" else "backup"
    result = stratus_cli("chaos", "kill-site", site, "--signal", signal_name, "--json", cwd=world.parent)
    report = one_json(result.stdout)
    assert result.returncode == 0, report
    assert report["failures"] == 0, report["failure_samples"]
    assert report["requests"] > 0
    assert report["ejected_after_s"] is not None
    assert report["back_in_rotation_after_s"] is not None
    payload = wait_all_healthy(world)
    assert payload["sites"][site]["restarts"] >= 1


def test_a_model_bound_to_the_eu_is_not_served_from_a_us_site(world: Path) -> None:
    result = stratus_cli("serve", "export.model", "--sites", "cheap,us", "--port", "1", cwd=world.parent)
    assert result.returncode == 2
    assert "EU-resident" in result.stderr
    assert "site us" in result.stderr
    assert not (world.parent / "sites" / "us").exists()  # refused before any byte moved


def test_unknown_sites_and_artifacts_are_named(world: Path) -> None:
    result = stratus_cli("serve", "export.model", "--sites", "cheap,nowhere", cwd=world.parent)
    assert result.returncode == 2
    assert "unknown site 'nowhere'" in result.stderr
    assert "cheap" in result.stderr
    result = stratus_cli("serve", "export.nothing", "--sites", "cheap", cwd=world.parent)
    assert result.returncode == 2
    assert "export.model" in result.stderr  # the artifacts one could serve
    assert "Traceback" not in result.stderr


def test_stop_ends_every_process(world: Path, deployment: dict[str, Any]) -> None:
    pids = [s["pid"] for s in status(world)[1]["sites"].values()]
    result = stratus_cli("serve", "stop", cwd=world.parent)
    assert result.returncode == 0, result.stderr
    code, payload = status(world)
    assert code == 1
    assert payload == {"running": False}
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)


def test_the_run_registered_the_model_and_serve_loads_it_by_alias(world: Path) -> None:
    result = stratus_cli("models", "show", "flow-logit", "--alias", "champion", "--json", cwd=world.parent)
    assert result.returncode == 0, result.stderr
    shown = one_json(result.stdout)
    text = json.dumps(shown)
    assert "export" in text  # the step, and its input's hash, are the lineage
    assert "square.squares" in text
    (port,) = free_ports(1)
    result = stratus_cli(
        "serve", "models:/flow-logit@champion", "--sites", "backup", "--port", port, "--detach", "--json",
        cwd=world.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    try:
        served = one_json(result.stdout)
        assert served["model"] == "flow-logit"
        x = np.ones((2, 30), dtype=np.float32)
        code, answer, site = infer(served["gateway_url"], "flow-logit", x)
        assert code == 200, answer
        assert site == "backup"
        np.testing.assert_allclose(
            np.array(answer["outputs"][0]["data"]).reshape(2, 1), expected(x), rtol=1e-5
        )
    finally:
        stratus_cli("serve", "stop", cwd=world.parent)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_status_without_a_deployment_says_how_to_start_one(tmp_path: Path) -> None:
    world = write_world(tmp_path)
    result = stratus_cli("serve", "status", cwd=world.parent)
    assert result.returncode == 1
    assert "stratus serve MODEL --sites" in result.stderr
    assert os.path.exists(world)


# After test_stop_ends_every_process: one deployment at a time per platform.


def _detached(world: Path, model: str, sites: str) -> subprocess.CompletedProcess[str]:
    (port,) = free_ports(1)
    return stratus_cli(
        "serve", model, "--sites", sites, "--port", port, "--detach", "--json", cwd=world.parent
    )  # fmt: skip


def _held_at(world: Path, site: str, sha: str) -> bool:
    return (world.parent / "sites" / site / "objects" / "sha256" / sha[:2] / sha).is_file()


@pytest.fixture(scope="module")
def sha(world: Path) -> str:
    """The registered champion's SHA-256: the bytes of the run's EU-resident export.model."""
    result = stratus_cli("models", "show", "flow-logit", "--alias", "champion", "--json", cwd=world.parent)
    assert result.returncode == 0, result.stderr
    found = one_json(result.stdout)["selected"]["onnx_sha256"]
    assert isinstance(found, str)
    return found


@pytest.mark.parametrize("form", ["registry", "file"])
def test_the_eu_model_is_refused_at_a_us_site_whatever_it_is_called(world: Path, sha: str, form: str) -> None:
    model = "models:/flow-logit@champion"
    if form == "file":  # the same bytes, copied out of a store under another name
        model = str(world.parent / "copy.onnx")
        shutil.copyfile(world.parent / "sites" / "cheap" / "objects" / "sha256" / sha[:2] / sha, model)
    result = _detached(world, model, "us")
    if result.returncode == 0:  # the old behaviour: it served; stop it before failing
        stratus_cli("serve", "stop", cwd=world.parent)
    assert result.returncode == 2, result.stdout
    message = " ".join(result.stderr.split())
    assert "is EU-resident and site us is in US: serve it from EU sites only" in message
    assert not _held_at(world, "us", sha)  # refused before any byte moved


def test_the_registry_model_is_copied_into_each_serving_sites_own_store(world: Path, sha: str) -> None:
    assert not _held_at(world, "spare", sha)
    result = _detached(world, "models:/flow-logit@champion", "spare")
    try:
        assert result.returncode == 0, result.stderr + result.stdout
        served = one_json(result.stdout)
        assert _held_at(world, "spare", sha)  # the site's own store holds the verified copy
        model_path = Path(served["sites"]["spare"]["model_path"])
        assert model_path.name == f"{sha}.onnx"
        assert model_path.parent.name == "spare"  # loaded from what was fetched from that store
        x = np.ones((2, 30), dtype=np.float32)
        code, answer, site = infer(served["gateway_url"], "flow-logit", x)
        assert (code, site) == (200, "spare"), answer
    finally:
        stratus_cli("serve", "stop", cwd=world.parent)
    listed = one_json(stratus_cli("storage", "ls", "--json", cwd=world.parent).stdout)
    [entry] = [a for a in listed["artifacts"] if a["sha256"] == sha]
    assert entry["replicas"]["spare"] == "verified"
    assert entry["residency"] == ["EU"]


def test_a_run_artifact_is_copied_from_a_holder_that_does_not_serve(world: Path, sha: str) -> None:
    assert not _held_at(world, "vault", sha)  # held at cheap and backup, neither of them serving
    result = _detached(world, "export.model", "vault")
    try:
        assert result.returncode == 0, result.stderr + result.stdout
        assert _held_at(world, "vault", sha)
        code, _, site = infer(one_json(result.stdout)["gateway_url"], "flow", np.ones((1, 30), np.float32))
        assert (code, site) == (200, "vault")
    finally:
        stratus_cli("serve", "stop", cwd=world.parent)


# Last: these break the registry's copy and the sites' stores on purpose.


def _serve_origin(world: Path) -> str:
    """Serve the champion from spare (detached), check it answers, stop; where its bytes came from."""
    result = _detached(world, "models:/flow-logit@champion", "spare")
    try:
        assert result.returncode == 0, result.stderr + result.stdout
        served = one_json(result.stdout)
        code, _, site = infer(served["gateway_url"], "flow-logit", np.ones((1, 30), np.float32))
        assert (code, site) == (200, "spare")
        return " ".join(str(served["source"]).split())
    finally:
        stratus_cli("serve", "stop", cwd=world.parent)


def test_losing_the_registry_file_or_a_site_loses_no_registered_model(world: Path, sha: str) -> None:
    shown = one_json(
        stratus_cli("models", "show", "flow-logit", "--alias", "champion", "--json", cwd=world.parent).stdout
    )
    # Registered with the sites holding its bytes: the step's, its replica's, and registry.artifacts'.
    assert shown["selected"]["onnx_sites"] == ["archive", "backup", "cheap"]
    [registry_file] = (world.parent / ".stratus" / "mlartifacts").rglob("flow-logit.onnx")
    good = registry_file.read_bytes()
    cache = world.parent / ".stratus" / "serve" / "models" / "registry"

    registry_file.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # the registry's copy rotted
    shutil.rmtree(cache, ignore_errors=True)  # earlier serves downloaded it here
    shutil.rmtree(world.parent / "sites" / "archive")  # and the first holder's store is gone
    origin = _serve_origin(world)
    assert "bytes from site backup's store, sha256 checked, after archive: " in origin
    assert "the registry's copy failed: models:/flow-logit/1: the downloaded file's SHA-256 is" in origin

    for site in ("backup", "cheap", "spare", "vault"):  # every other copy goes too
        shutil.rmtree(world.parent / "sites" / site / "objects", ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)  # earlier serves downloaded it here
    result = _detached(world, "models:/flow-logit@champion", "spare")
    assert result.returncode == 1, result.stdout
    message = " ".join(result.stderr.split())
    assert f"no verified copy of models:/flow-logit/1 (sha256 {sha}) is left anywhere tried" in message
    assert "the registry's artifact store failed (models:/flow-logit/1: the downloaded file's" in message
    for site in ("archive", "backup", "cheap", "spare"):  # the holders the manifest and version name
        assert f"{site}: does not hold it" in message

    registry_file.write_bytes(good)  # the registry's copy is back, with every site store still empty
    shutil.rmtree(cache, ignore_errors=True)
    result = _detached(world, "models:/flow-logit@champion", "us")  # resolved, then refused at a US site
    assert result.returncode == 2, result.stdout
    message = " ".join(result.stderr.split())
    assert "bytes from the registry's artifact store (sqlite:///" in message
    assert "is EU-resident and site us is in US" in message
