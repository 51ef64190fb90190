"""Secret references in the platform file, resolved against a real OpenBao server (and env, and files).

Every failure must name the reference and the field's line, and must never contain a secret value.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hvac
import pytest
import yaml

from stratus.config import load_platform
from stratus.errors import ConfigError
from stratus.redact import redact
from stratus.sandbox.openbao import OpenBao, write_secret

pytest_plugins = ["tests.vault_server"]

SECRET = "planted-vault-secret-7f3a9c"
TOKEN_SECRET = "planted-file-secret-51d0e2"
ENV_SECRET = "planted-env-secret-c0ffee42"


def _platform(folder: Path, options: dict[str, Any], vault: dict[str, Any] | None = None) -> Path:
    site = {
        "provider": "onprem",
        "region": "dc-1",
        "jurisdiction": "EU",
        "storage": "s3://bucket/p",
        "storage_options": {"endpoint_url": "http://127.0.0.1:9", **options},
        "offerings": [{"name": "node", "vcpus": 2, "memory_gb": 4, "price_per_hour_usd": 1}],
    }
    data: dict[str, Any] = {"sites": {"s": site}}
    if vault is not None:
        data["secrets"] = {"vault": vault}
    path = folder / "stratus.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _vault(server: OpenBao, folder: Path, token: str) -> dict[str, Any]:
    (folder / "bao-token").write_text(token, encoding="utf-8")
    return {"address": server.address, "token_ref": "file:bao-token"}


def _options(path: Path) -> dict[str, Any]:
    return dict(load_platform(path).sites["s"].storage_options)


def _config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_platform(path)
    message = str(caught.value)
    for secret in (SECRET, TOKEN_SECRET, ENV_SECRET):
        assert secret not in message
    return message


@pytest.fixture(autouse=True)
def _refuse_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRATUS_ALLOW_INLINE_SECRETS", raising=False)
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)


def test_env_file_and_vault_references_resolve_and_are_redacted(
    openbao: OpenBao, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_secret(openbao, "stratus/s3", {"secret_key": SECRET})
    monkeypatch.setenv("PLANTED_KEY", ENV_SECRET)
    (tmp_path / "token.txt").write_text(TOKEN_SECRET + "\n", encoding="utf-8")
    path = _platform(
        tmp_path,
        {"key": "env:PLANTED_KEY", "secret": "vault:secret/stratus/s3#secret_key", "token": "file:token.txt"},
        _vault(openbao, tmp_path, openbao.root_token),
    )
    options = _options(path)
    assert (options["key"], options["secret"], options["token"]) == (ENV_SECRET, SECRET, TOKEN_SECRET)
    # registered for redaction the moment they were resolved
    assert redact(f"a vendor said {SECRET} {ENV_SECRET} {TOKEN_SECRET}") == "a vendor said *** *** ***"


def test_vault_address_and_token_from_the_environment(
    openbao: OpenBao, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_secret(openbao, "stratus/env", {"k": SECRET})
    monkeypatch.setenv("VAULT_ADDR", openbao.address)
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)
    assert _options(_platform(tmp_path, {"secret": "vault:secret/stratus/env#k"}))["secret"] == SECRET


def test_an_expired_token_names_the_reference(openbao: OpenBao, tmp_path: Path) -> None:
    write_secret(openbao, "stratus/s3", {"secret_key": SECRET})
    root = hvac.Client(url=openbao.address, token=openbao.root_token)
    short = root.auth.token.create(ttl="1s", renewable=False)["auth"]["client_token"]
    probe = hvac.Client(url=openbao.address, token=short)
    while True:  # until the server itself says the token is gone (no assumption about its clock)
        try:
            probe.auth.token.lookup_self()
        except hvac.exceptions.Forbidden:
            break
        time.sleep(0.2)
    path = _platform(
        tmp_path, {"secret": "vault:secret/stratus/s3#secret_key"}, _vault(openbao, tmp_path, short)
    )
    message = _config_error(path)
    assert "vault:secret/stratus/s3#secret_key" in message
    assert "expired, revoked or invalid" in message
    assert "sites.s.storage_options.secret" in message
    assert "stratus.yaml:" in message
    assert short not in message


def test_a_path_the_policy_denies_is_a_clear_error(openbao: OpenBao, tmp_path: Path) -> None:
    write_secret(openbao, "team-a/db", {"password": SECRET})
    write_secret(openbao, "team-b/db", {"password": SECRET})
    root = hvac.Client(url=openbao.address, token=openbao.root_token)
    root.sys.create_or_update_policy("team-b-only", 'path "secret/data/team-b/*" { capabilities = ["read"] }')
    token = root.auth.token.create(policies=["team-b-only"], ttl="1h")["auth"]["client_token"]
    vault = _vault(openbao, tmp_path, token)
    assert (
        _options(_platform(tmp_path, {"secret": "vault:secret/team-b/db#password"}, vault))["secret"]
        == SECRET
    )
    message = _config_error(_platform(tmp_path, {"secret": "vault:secret/team-a/db#password"}, vault))
    assert "vault:secret/team-a/db#password: permission denied" in message
    assert token not in message


def test_a_missing_key_or_path_lists_what_is_there(openbao: OpenBao, tmp_path: Path) -> None:
    write_secret(openbao, "stratus/keys", {"access_key": "stratus", "secret_key": SECRET})
    vault = _vault(openbao, tmp_path, openbao.root_token)
    message = _config_error(_platform(tmp_path, {"secret": "vault:secret/stratus/keys#nope"}, vault))
    assert "has no key 'nope'; its keys: access_key, secret_key" in message
    message = _config_error(_platform(tmp_path, {"secret": "vault:secret/stratus/absent#k"}, vault))
    assert "no secret at secret/stratus/absent" in message


def test_env_and_file_failures(tmp_path: Path) -> None:
    assert "environment variable NOT_SET_ANYWHERE is not set" in _config_error(
        _platform(tmp_path, {"secret": "env:NOT_SET_ANYWHERE"})
    )
    assert "cannot read" in _config_error(_platform(tmp_path, {"secret": "file:missing.txt"}))
    assert "vault:MOUNT/PATH#KEY" in _config_error(_platform(tmp_path, {"secret": "vault:nokey"}))
    assert "set VAULT_ADDR or secrets.vault.address" in _config_error(
        _platform(tmp_path, {"secret": "vault:secret/a#b"})
    )


def test_literal_credentials_are_refused_unless_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _platform(tmp_path, {"key": "AKIAPLANTED", "secret": SECRET})
    message = _config_error(path)
    assert "stratus.yaml:" in message
    assert "sites.s.storage_options.key" in message
    assert "env:NAME, file:PATH or vault:MOUNT/PATH#KEY" in message
    assert "--allow-inline-secrets" in message
    monkeypatch.setenv("STRATUS_ALLOW_INLINE_SECRETS", "1")
    assert _options(path)["secret"] == SECRET
    monkeypatch.delenv("STRATUS_ALLOW_INLINE_SECRETS")
    # a method name is not a credential
    assert _options(_platform(tmp_path, {"token": "anon"}))["token"] == "anon"


def test_a_file_url_is_a_storage_root_not_a_reference() -> None:
    from stratus.secrets import is_reference

    assert not is_reference("file:///srv/stratus")
    assert is_reference("file:/run/secrets/key")
    assert is_reference("vault:secret/a#b")
    assert is_reference("env:X")


def test_the_dev_server_log_is_owner_only(openbao: OpenBao) -> None:
    # dev mode prints the root token there
    assert Path(openbao.log).stat().st_mode & 0o077 == 0
