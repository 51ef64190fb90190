"""``stratus models promote --deploy``: a registered version rolled onto a running deployment under load.

A deployment serves ``models:/logit@production`` (v1) from two sites. Two client threads send requests
through the gateway the whole time. Promoting ``staging`` (v2) to ``production`` with ``--deploy`` copies
v2's bytes to both sites' stores, rolls each site to it behind the health gate, and moves the alias,
recorded with who and when, and in the audit trail: not one request fails, and every answer after the
command names version 2. A version whose file is not a model fails readiness at the first site: the
command exits 1 saying so and that the site was rolled back, the alias does not move, not one request
fails, and the old version still answers.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stratus.processes import free_ports
from stratus.registry import Lineage, Registry
from tests.e2e.test_cli_serve_fleet import BODY, write_model
from tests.run_world import one_json, stratus_cli, write_world

pytestmark = pytest.mark.slow

ACTOR = "release-bot"


class Load:
    """Client threads sending one inference after another through the gateway; counts what answered."""

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url = url
        self.failures: list[str] = []
        self.versions: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    @property
    def requests(self) -> int:
        with self._lock:
            return sum(self.versions.values()) + len(self.failures)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, version = infer(self.url)
            except (OSError, http.client.HTTPException) as exc:
                status, version = 0, repr(exc)
            with self._lock:
                if status == 200:
                    self.versions[version] += 1
                else:
                    self.failures.append(f"{status}: {version}")

    def wait_for(self, more: int, timeout_s: float = 60.0) -> None:
        """Until ``more`` further requests were answered (or failed)."""
        goal, deadline = self.requests + more, time.monotonic() + timeout_s
        while self.requests < goal and time.monotonic() < deadline:
            time.sleep(0.05)


def infer(url: str) -> tuple[int, str]:
    """One inference: (status, the model_version that answered, else the error)."""
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    try:
        conn.request("POST", "/v2/models/logit/infer", BODY, {"content-type": "application/json"})
        response = conn.getresponse()
        doc = json.loads(response.read())
    finally:
        conn.close()
    return response.status, str(doc.get("model_version") if response.status == 200 else doc.get("error"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The platform, three registered versions of ``logit`` (v3 is not a model), and v1 served."""
    import onnx

    folder = tmp_path_factory.mktemp("promote")
    write_world(folder)
    write_model(folder / "v1.onnx")
    retrained = onnx.load(str(folder / "v1.onnx"))
    retrained.doc_string = "retrained"  # other bytes, the same signature
    onnx.save(retrained, str(folder / "v2.onnx"))
    (folder / "broken.onnx").write_bytes(b"these bytes are not an ONNX model")
    registry = Registry.open(None, folder / ".stratus")
    for file, alias in (("v1.onnx", "production"), ("v2.onnx", "staging"), ("broken.onnx", "broken")):
        registry.register("logit", folder / file, Lineage("r1", "export", ("cheap",)), aliases=[alias])
    (port,) = free_ports(1)
    served = stratus_cli(
        "serve", "models:/logit@production", "--sites", "cheap,backup", "--port", str(port), "--detach",
        "--json", cwd=folder, timeout=180,
    )  # fmt: skip
    assert served.returncode == 0, served.stderr + served.stdout
    yield folder
    stratus_cli("serve", "stop", "--name", "logit", cwd=folder)


def gateway(world: Path) -> str:
    status = one_json(stratus_cli("serve", "status", "--json", cwd=world).stdout)
    url: str = status["gateway_url"]
    return url


def production(world: Path) -> dict[str, Any]:
    shown = stratus_cli("models", "show", "logit", "--alias", "production", "--json", cwd=world)
    assert shown.returncode == 0, shown.stderr
    selected: dict[str, Any] = one_json(shown.stdout)["selected"]
    return selected


def last_audit(world: Path) -> dict[str, Any]:
    records = one_json(stratus_cli("audit", "ls", "--json", cwd=world).stdout)["records"]
    record: dict[str, Any] = records[-1]
    return record


def test_promote_with_deploy_rolls_every_site_under_load_without_a_failed_request(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUS_ACTOR", ACTOR)
    url = gateway(world)
    assert infer(url) == (200, "1")
    with Load(url) as load:
        load.wait_for(20)
        promoted = stratus_cli(
            "models", "promote", "logit", "--from-alias", "staging", "--to-alias", "production",
            "--deploy", "cheap,backup", "--watch", "1", "--json", cwd=world, timeout=300,
        )  # fmt: skip
        assert promoted.returncode == 0, promoted.stderr + promoted.stdout
        before = Counter(load.versions)
        load.wait_for(40)
        after = load.versions - before
    assert load.failures == [], load.failures[:5]
    assert set(after) == {"2"}, after  # once the command returned, only the new version answers
    assert before["1"] > 0
    result = one_json(promoted.stdout)
    assert (result["version"], result["previous_version"], result["from"]) == (2, 1, "staging")
    assert (result["promoted_by"], result["sites"]) == (ACTOR, ["cheap", "backup"])
    rolled = {site["site"]: site for site in result["rolled"]["sites"]}
    assert list(rolled) == ["cheap", "backup"]  # site by site, in --deploy order
    assert rolled["cheap"]["retired"] == ["cheap"]
    assert [s["name"] for s in rolled["cheap"]["serving"]] == ["cheap~2"]

    shown = production(world)
    assert shown["version"] == 2
    assert shown["promotions"]["production"]["by"] == ACTOR
    assert shown["promotions"]["production"]["from"] == "staging"
    audit = last_audit(world)
    assert (audit["command"], audit["actor"], audit["outcome"]) == ("models promote", ACTOR, "ok")
    status = one_json(stratus_cli("serve", "status", "--json", cwd=world).stdout)
    assert {name: s["model_version"] for name, s in status["sites"].items()} == {
        "cheap~2": "2",
        "backup~2": "2",
    }
    # The bytes are in both sites' stores, under their hash.
    digest = shown["onnx_sha256"]
    assert all(any((world / "sites" / site).rglob(f"*{digest}*")) for site in ("cheap", "backup"))


def test_a_version_that_fails_readiness_is_rolled_back_without_a_failed_request(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUS_ACTOR", ACTOR)
    url = gateway(world)
    serving = production(world)["version"]
    with Load(url) as load:
        load.wait_for(20)
        refused = stratus_cli(
            "models", "promote", "logit", "--from-alias", "broken", "--to-alias", "production",
            "--deploy", "cheap,backup", "--watch", "1", cwd=world, timeout=300,
        )  # fmt: skip
        load.wait_for(20)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    message = " ".join(refused.stderr.split())
    assert "rolling deployment logit to models:/logit/3 failed, so logit@production was not moved" in message
    assert "site cheap: the new version failed readiness: the model server cheap" in message
    assert "Rolled back: cheap serve the version they served before" in message
    assert "Traceback" not in refused.stderr
    assert load.failures == [], load.failures[:5]
    assert set(load.versions) == {str(serving)}  # the broken version never answered
    assert production(world)["version"] == serving
    audit = last_audit(world)
    assert (audit["command"], audit["outcome"], audit["exit_code"]) == ("models promote", "failed", 1)
    status = one_json(stratus_cli("serve", "status", "--json", cwd=world).stdout)
    assert {s["model_version"] for s in status["sites"].values()} == {str(serving)}
    assert status["state"] == "running"
