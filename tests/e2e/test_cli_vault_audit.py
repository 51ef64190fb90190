"""Secrets by reference and the audit trail, through the real CLI.

A run whose replica store is a real S3 server (SeaweedFS) with its keys read from a real OpenBao server
by ``vault:`` reference; then every output and every file under the project folder is searched for the
keys and the Vault token. The audit trail records who ran what, with the outcome, and no secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stratus.sandbox.openbao import OpenBao, write_secret
from tests.run_world import one_json, pipeline, platform, stratus_cli, write_world
from tests.servers import TestServer

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.servers", "tests.vault_server"]


@pytest.fixture(autouse=True)
def _refs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRATUS_ALLOW_INLINE_SECRETS", raising=False)
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.setenv("STRATUS_ACTOR", "alice@team-fraud")


def _world(folder: Path, openbao: OpenBao, seaweedfs: TestServer) -> tuple[Path, list[str]]:
    options = seaweedfs.options()
    write_secret(openbao, "stratus/s3", {"access_key": options["key"], "secret_key": options["secret"]})
    spec: dict[str, Any] = platform()
    spec["sites"]["vault"]["storage"] = seaweedfs.url(f"audit-{folder.name}")
    spec["sites"]["vault"]["storage_options"] = {
        **options,
        "key": "vault:secret/stratus/s3#access_key",
        "secret": "vault:secret/stratus/s3#secret_key",
    }
    (folder / ".bao-token").write_text(openbao.root_token, encoding="utf-8")
    spec["secrets"] = {"vault": {"address": openbao.address, "token_ref": "file:.bao-token"}}
    path = write_world(folder, platform_spec=spec, pipeline_spec=pipeline())
    return path, [options["secret"], openbao.root_token]


def test_a_run_reads_its_store_keys_from_openbao_and_the_audit_records_it(
    tmp_path: Path, openbao: OpenBao, seaweedfs: TestServer
) -> None:
    world, secrets = _world(tmp_path, openbao, seaweedfs)
    outputs: list[str] = []

    def cli(*args: str) -> Any:
        result = stratus_cli(*args, cwd=tmp_path, timeout=300)
        outputs.extend([result.stdout, result.stderr])
        return result

    ran = cli("run", world.name, "--json")
    assert ran.returncode == 0, ran.stderr
    assert one_json(ran.stdout)["status"] == "succeeded"
    verify = cli("storage", "verify", "--json")
    assert verify.returncode == 0, verify.stderr
    failed = cli("run", "missing-pipeline.yaml")
    assert failed.returncode == 2, failed.stderr

    listed = cli("audit", "ls", "--json", "--since", "1h")
    assert listed.returncode == 0, listed.stderr
    records = one_json(listed.stdout)["records"]
    assert [(r["command"], r["outcome"], r["exit_code"]) for r in records] == [
        ("run", "ok", 0),
        ("run", "failed", 2),
    ], records  # storage verify changes nothing: not recorded
    assert {r["actor"] for r in records} == {"alice@team-fraud"}
    assert records[0]["arguments"] == ["run", world.name, "--json"]

    leaked = [s for s in secrets for text in outputs if s in text]
    assert not leaked, "a secret reached a command's output"
    files = [p for p in (tmp_path / ".stratus").rglob("*") if p.is_file()]
    assert any(p.name == "state.db" for p in files)
    leaked_files = [str(p) for p in files for s in secrets if s.encode() in p.read_bytes()]
    assert not leaked_files, f"a secret in files Stratus wrote: {leaked_files}"


def test_a_literal_key_is_refused_and_the_override_is_audited(
    tmp_path: Path, openbao: OpenBao, seaweedfs: TestServer
) -> None:
    world, secrets = _world(tmp_path, openbao, seaweedfs)
    spec = yaml.safe_load((tmp_path / "stratus.yaml").read_text())
    spec["sites"]["vault"]["storage_options"]["secret"] = secrets[0]
    (tmp_path / "stratus.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")

    refused = stratus_cli("plan", world.name, cwd=tmp_path)
    assert refused.returncode == 2
    assert "stratus.yaml:" in refused.stderr
    assert "sites.vault.storage_options.secret" in refused.stderr
    assert "env:NAME, file:PATH or vault:MOUNT/PATH#KEY" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert secrets[0] not in refused.stderr

    allowed = stratus_cli("--allow-inline-secrets", "plan", world.name, cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    records = one_json(stratus_cli("audit", "ls", "--json", cwd=tmp_path).stdout)["records"]
    assert [(r["command"], r["arguments"], r["outcome"]) for r in records] == [
        ("plan", ["--allow-inline-secrets", "plan", world.name], "ok")
    ]


def test_since_must_be_a_duration_or_a_time(tmp_path: Path) -> None:
    write_world(tmp_path)
    result = stratus_cli("audit", "ls", "--since", "yesterday", cwd=tmp_path)
    assert result.returncode == 2
    assert "--since: 'yesterday' is neither a duration (30m, 1h, 2d) nor an ISO time" in result.stderr
