"""The model registry against real MLflow stores: the embedded SQLite file, and ``mlflow server`` on loopback.

The server is started once for the module (SQLite backend, artifacts proxied with ``--serve-artifacts``,
job execution off to keep it small) and stopped by its process group. Models are real ONNX files built
with the ``onnx`` helper API; a download must give back the registered bytes, checked by SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from stratus.cli import models_cmd
from stratus.cli.audit_cmd import actor
from stratus.errors import ResidencyError
from stratus.registry import Lineage, ModelRef, Registry, RegistryError, download_model, fetch_model
from stratus.storage import open_store
from tests.integration.serving_harness import make_logit

pytestmark = pytest.mark.slow

SHA_DATA = hashlib.sha256(b"transactions").hexdigest()
SHA_FEATURES = hashlib.sha256(b"features").hexdigest()
STARTUP_LIMIT_S = 180.0


def lineage(run_id: str = "20260101-120000-fraud", auc: float = 0.93) -> Lineage:
    return Lineage(
        run_id=run_id,
        step="train",
        sites=("gcp-eu-west", "aws-us-east"),
        inputs={"dataset:transactions": SHA_DATA, "prepare.features": SHA_FEATURES},
        metrics={"auc": auc},
        cost_usd=Decimal("1.270001"),
        pipeline="fraud",
        tags={"owner": "risk-team"},
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_logit(tmp_path_factory.mktemp("onnx") / "logit.onnx")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server not healthy after {STARTUP_LIMIT_S:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``mlflow server`` on a free loopback port: its URL and its artifacts folder."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    command = [
        *(sys.executable, "-m", "mlflow", "server"),
        *("--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"),
        *("--artifacts-destination", str(root / "artifacts"), "--serve-artifacts"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
    ]
    with log.open("wb") as out:
        # Its own session, so stopping the group also stops the uvicorn worker it starts.
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True
        )
    try:
        _wait_healthy(url, proc, log)
        yield url, root / "artifacts"
    finally:
        # A throwaway server: a short grace period, then it is killed.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def cli() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(models_cmd.app, name="models")
    return root


def run_cli(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli(), ["models", *args, "--json"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    payload: dict[str, object] = json.loads(result.stdout)
    return payload


def register_promote_download(registry: Registry, name: str, onnx: Path, cache: Path) -> None:
    """The flow every store must support: two versions, lineage back intact, alias moved, bytes back."""
    first = registry.register(name, onnx, lineage(auc=0.91), aliases=["challenger"])
    second = registry.register(name, onnx, lineage(run_id="20260102-090000-fraud"), description="retrained")
    assert (first.version, second.version) == (1, 2)
    assert first.aliases == ("challenger",)
    assert first.lineage == lineage(auc=0.91)
    assert second.onnx_sha256 == sha256(onnx)
    assert second.onnx_file == "logit.onnx"
    assert second.description == "retrained"

    details = registry.show(name)
    assert [v.version for v in details.versions] == [2, 1]
    assert details.selected is not None
    assert details.selected.version == 2
    assert details.selected.lineage == lineage(run_id="20260102-090000-fraud")
    assert details.model.aliases == {"challenger": 1}

    assert registry.promote(name, 1, "champion").previous_version is None
    moved = registry.promote(name, 2, "champion")
    assert (moved.version, moved.previous_version) == (2, 1)
    shown = registry.show(name, alias="champion").selected
    assert shown is not None
    assert shown.version == 2
    assert shown.aliases == ("champion",)

    path = registry.download(name, "champion", cache)
    assert path == cache / f"{name}-v2.onnx"
    assert sha256(path) == sha256(onnx)
    assert registry.download(name, 1, cache) == cache / f"{name}-v1.onnx"
    assert not [p for p in cache.iterdir() if p.name.startswith(".download-")]


# -- (a) the embedded store -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded store's state folder for the module: creating its database is the slow part."""
    return tmp_path_factory.mktemp("team") / ".stratus"


def test_embedded_store_registers_promotes_and_downloads(
    embedded: Path, onnx_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    registry = Registry.open(None, embedded)
    assert registry.list_models() == []
    assert not embedded.exists(), "reading an empty registry must not create it"
    register_promote_download(registry, "fraud", onnx_model, tmp_path / "cache")

    assert (embedded / "mlflow.db").is_file()
    assert list((embedded / "mlartifacts").rglob("logit.onnx"))
    assert not (tmp_path / "mlruns").exists(), "artifacts must not land in the working directory"
    assert "fraud" in [m.name for m in Registry.open(None, embedded).list_models()]
    served = fetch_model("models:/fraud@champion", tmp_path / "serve", tracking_uri=None, state_dir=embedded)
    assert sha256(served) == sha256(onnx_model)


def test_embedded_store_errors_name_what_exists(embedded: Path, onnx_model: Path, tmp_path: Path) -> None:
    registry = Registry.open(None, embedded)
    registry.register("scoring", onnx_model, lineage(), aliases=["champion"])
    where = f"sqlite:///{embedded.resolve()}/mlflow.db"

    with pytest.raises(RegistryError) as caught:
        registry.show("churn")
    assert str(caught.value).startswith(
        f"no model named 'churn' in the registry at {where}; registered models: "
    )
    assert "scoring" in str(caught.value).rsplit(": ", 1)[1].split(", ")
    with pytest.raises(RegistryError) as caught:
        registry.download("scoring", "prod", tmp_path)
    assert str(caught.value) == "model 'scoring' has no alias 'prod'; its aliases: champion → v1"
    with pytest.raises(RegistryError) as caught:
        registry.promote("scoring", 4, "champion")
    assert str(caught.value) == "model 'scoring' has no version 4; its versions: 1"
    with pytest.raises(RegistryError) as caught:
        registry.register("scoring", tmp_path / "missing.onnx", lineage())
    assert str(caught.value) == f"{tmp_path}/missing.onnx: no such .onnx file to register as 'scoring'"


def test_a_resident_model_is_registered_only_where_its_store_may_hold_it(
    tmp_path: Path, onnx_model: Path
) -> None:
    eu_model = replace(lineage(), residency=("eu",))
    state = tmp_path / ".stratus"
    no_jurisdiction = "has no declared jurisdiction (registry.jurisdiction is not set in the platform file)"
    for jurisdiction, where in ((None, no_jurisdiction), ("US", "is in US")):
        registry = Registry.open(None, state, jurisdiction=jurisdiction)
        with pytest.raises(ResidencyError) as caught:
            registry.register("fraud", onnx_model, eu_model)
        assert str(caught.value).startswith(
            f"refusing to register model 'fraud': it is EU-resident and the registry's artifact store at "
            f"{registry.shown_uri} {where}; "
        )
        assert "registry: {jurisdiction: EU}" in str(caught.value) or jurisdiction == "US"
        assert not state.exists(), "refused before anything was written"
    eu = Registry.open(None, state, jurisdiction="eu")
    version = eu.register("fraud", onnx_model, eu_model)
    assert version.lineage is not None
    assert version.lineage.residency == ("EU",)
    unbound = Registry.open(None, state).register("fraud", onnx_model, lineage())  # no residency: anywhere
    assert unbound.lineage is not None
    assert unbound.lineage.residency == ()


def test_a_corrupted_artifact_is_caught_on_download(embedded: Path, onnx_model: Path, tmp_path: Path) -> None:
    registry = Registry.open(None, embedded)
    version = registry.register("tampered", onnx_model, lineage())
    assert version.run_id is not None
    [stored] = (embedded / "mlartifacts" / version.run_id).rglob("logit.onnx")
    stored.write_bytes(b"not the model")
    with pytest.raises(RegistryError) as caught:
        registry.download("tampered", None, tmp_path / "cache")
    assert f"but {sha256(onnx_model)} was registered; the artifact store's copy is corrupt" in str(
        caught.value
    )
    assert not (tmp_path / "cache" / "tampered-v1.onnx").exists()


def test_a_lost_registry_file_is_read_from_any_site_store_holding_its_bytes(
    embedded: Path, onnx_model: Path, tmp_path: Path
) -> None:
    stores = {site: open_store(site, f"file://{tmp_path / site}") for site in ("eu-a", "eu-b")}
    stores["eu-b"].publish(onnx_model)  # eu-a never got its copy
    registry = Registry.open(None, embedded)
    info = registry.register("kept", onnx_model, lineage(), holders=["eu-a", "eu-b"])
    assert info.onnx_sites == ("eu-a", "eu-b")
    assert info.run_id is not None
    [stored] = (embedded / "mlartifacts" / info.run_id).rglob("logit.onnx")
    stored.unlink()

    got = download_model(registry, info, tmp_path / "cache", open_store=stores.get)
    assert sha256(got.path) == sha256(onnx_model)
    assert got.origin.startswith("site eu-b's store, sha256 checked, after eu-a: does not hold it (the ")
    assert "(the registry's copy failed: models:/kept/1 (" in got.origin
    again = download_model(registry, info, tmp_path / "cache", open_store=stores.get)
    assert again.origin == f"{got.origin}; hash-checked copy kept at {got.path}"  # said again from cache

    stores["eu-b"].remove(sha256(onnx_model))
    with pytest.raises(RegistryError) as caught:
        download_model(registry, info, tmp_path / "other", holders=["gone"], open_store=stores.get)
    message = str(caught.value)
    assert message.startswith(f"no verified copy of models:/kept/1 (sha256 {sha256(onnx_model)}) is left")
    assert "site stores: gone: not a site of the platform file; eu-a: does not hold it; eu-b: does not" in (
        message
    )


# -- (b) a real mlflow server ---------------------------------------------------------------------


def test_server_registers_promotes_and_downloads(
    server: tuple[str, Path], onnx_model: Path, tmp_path: Path
) -> None:
    url, artifacts = server
    state = tmp_path / ".stratus"
    registry = Registry.open(url, state)
    register_promote_download(registry, "fraud-server", onnx_model, tmp_path / "cache")
    assert "fraud-server" in [m.name for m in registry.list_models()]
    # The server proxies artifacts: they land in its --artifacts-destination, nothing on the client.
    assert list(artifacts.rglob("logit.onnx"))
    assert not state.exists()
    served = fetch_model("models:/fraud-server/1", tmp_path / "serve", tracking_uri=url, state_dir=state)
    assert sha256(served) == sha256(onnx_model)


def test_cli_against_the_server(server: tuple[str, Path], onnx_model: Path, tmp_path: Path) -> None:
    url, _ = server
    Registry.open(url, tmp_path).register("churn", onnx_model, lineage(), aliases=["challenger"])

    listed = run_cli("ls", "--tracking-uri", url)
    assert listed["tracking_uri"] == url
    models = {m["name"]: m for m in listed["models"]}  # type: ignore[attr-defined]
    assert models["churn"]["aliases"] == {"challenger": 1}

    promoted = run_cli("promote", "churn", "--version", "1", "--alias", "champion", "--tracking-uri", url)
    assert str(promoted.pop("promoted_at")).startswith(str(datetime.now(UTC).year))
    assert promoted == {
        "tracking_uri": url,
        "name": "churn",
        "alias": "champion",
        "version": 1,
        "previous_version": None,
        "uri": "models:/churn@champion",
        "promoted_by": actor(),
        "from": "v1",
        "sites": [],
        "rolled": None,
    }
    shown = run_cli("show", "churn", "--alias", "champion", "--tracking-uri", url)
    selected = shown["selected"]
    assert isinstance(selected, dict)
    assert selected["aliases"] == ["challenger", "champion"]
    assert selected["lineage"]["inputs"] == {
        "dataset:transactions": SHA_DATA,
        "prepare.features": SHA_FEATURES,
    }
    assert selected["lineage"]["cost_usd"] == "1.270001"

    people = CliRunner().invoke(cli(), ["models", "show", "churn", "--tracking-uri", url])
    assert people.exit_code == 0, people.output
    assert "models:/churn/1 (challenger, champion)" in people.stdout
    assert "dataset:transactions" in people.stdout


def test_server_errors_name_the_server(server: tuple[str, Path]) -> None:
    url, _ = server
    registry = Registry.open(url, Path("unused"))
    with pytest.raises(RegistryError) as caught:
        registry.version(ModelRef("never-registered", alias="champion"))
    assert str(caught.value).startswith(f"no model named 'never-registered' in the registry at {url}; ")


# -- (c) an unreachable server --------------------------------------------------------------------


def test_an_unreachable_server_is_named_with_the_fix(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(RegistryError) as caught:
        Registry.open(url, tmp_path).list_models()
    message = str(caught.value)
    assert message.startswith(f"cannot reach the MLflow tracking server at {url} (")
    assert message.endswith(
        "check that it is running, and registry.tracking_uri in the platform file or --tracking-uri"
    )
    assert caught.value.tracking_uri == url
