"""Parse and resolve one secret reference: ``env:NAME``, ``file:PATH`` or ``vault:MOUNT/PATH#KEY``.

Errors name the reference (which is not secret) and never the value; the value is registered with
:func:`stratus.redact.register_secrets` before it is returned, so nothing downstream can leak it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stratus.redact import register_secrets

__all__ = ["SecretRef", "SecretRefError", "VaultSettings", "is_reference", "parse_reference", "resolve"]

Scheme = Literal["env", "file", "vault"]
_SCHEMES: tuple[Scheme, ...] = ("env", "file", "vault")
#: The most bytes a ``file:`` secret may hold: a key or a token, not a data file.
MAX_SECRET_FILE_BYTES = 64 * 1024
#: Seconds one request to the Vault server may take before the reference fails.
VAULT_TIMEOUT_S = 10.0


class SecretRefError(Exception):
    """A reference that cannot be parsed or resolved; the loader turns it into a ConfigError with a line."""


@dataclass(frozen=True)
class SecretRef:
    """A parsed reference; ``text`` is how the user wrote it (safe to show)."""

    scheme: Scheme
    target: str
    key: str | None = None

    @property
    def text(self) -> str:
        """The reference as written, e.g. ``vault:secret/stratus/s3#secret_key``."""
        return f"{self.scheme}:{self.target}" + (f"#{self.key}" if self.key is not None else "")


@dataclass(frozen=True)
class VaultSettings:
    """Where ``vault:`` references are read: the address and a token (both resolved, never printed)."""

    address: str | None
    token: str | None


def is_reference(value: object) -> bool:
    """Whether ``value`` is written as a reference (``env:``, ``file:`` or ``vault:``); a URL such as
    ``file:///srv/data`` (a storage root) is not one."""
    if not isinstance(value, str) or ":" not in value:
        return False
    scheme, _, rest = value.partition(":")
    return scheme in _SCHEMES and not rest.startswith("//")


def parse_reference(text: str) -> SecretRef:
    """``text`` as a :class:`SecretRef`; a malformed one raises SecretRefError saying the expected form."""
    scheme, _, rest = text.partition(":")
    if scheme not in _SCHEMES or not rest:
        raise SecretRefError(
            f"{text!r} is not a secret reference; expected env:NAME, file:PATH or vault:PATH#KEY"
        )
    if scheme == "vault":
        path, sep, key = rest.partition("#")
        if not sep or not key or "/" not in path.strip("/"):
            raise SecretRefError(
                f"{text!r}: a vault reference is vault:MOUNT/PATH#KEY (KV v2), "
                "e.g. vault:secret/stratus/s3#secret_key"
            )
        return SecretRef("vault", path.strip("/"), key)
    return SecretRef("env" if scheme == "env" else "file", rest)


def resolve(ref: SecretRef, *, base: Path, vault: VaultSettings) -> str:
    """The secret ``ref`` points at, registered for redaction; ``file:`` paths are relative to ``base``."""
    if ref.scheme == "env":
        value = os.environ.get(ref.target)
        if not value:
            raise SecretRefError(f"{ref.text}: environment variable {ref.target} is not set or empty")
    elif ref.scheme == "file":
        value = _read_file(ref, base)
    else:
        value = _read_vault(ref, vault)
    register_secrets([value])
    return value


def _read_file(ref: SecretRef, base: Path) -> str:
    path = Path(ref.target).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        if path.stat().st_size > MAX_SECRET_FILE_BYTES:
            raise SecretRefError(
                f"{ref.text}: {path} is over {MAX_SECRET_FILE_BYTES} bytes; a secret file holds one value"
            )
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretRefError(f"{ref.text}: cannot read {path} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SecretRefError(f"{ref.text}: {path} is not UTF-8 text") from None
    if not value:
        raise SecretRefError(f"{ref.text}: {path} is empty")
    return value


def _read_vault(ref: SecretRef, vault: VaultSettings) -> str:
    # Imported here: hvac is the optional `secrets` extra, needed only when a vault: reference is used.
    try:
        import hvac
        import hvac.exceptions
        import requests
    except ImportError:
        raise SecretRefError(f"{ref.text}: vault references need hvac; install 'stratus[secrets]'") from None
    if not vault.address:
        raise SecretRefError(f"{ref.text}: no Vault address; set VAULT_ADDR or secrets.vault.address")
    if not vault.token:
        raise SecretRefError(f"{ref.text}: no Vault token; set VAULT_TOKEN or secrets.vault.token_ref")
    register_secrets([vault.token])
    mount, _, path = (ref.target).partition("/")
    client = hvac.Client(url=vault.address, token=vault.token, timeout=VAULT_TIMEOUT_S)
    try:
        answer = client.secrets.kv.v2.read_secret_version(
            path=path, mount_point=mount, raise_on_deleted_version=True
        )
    except hvac.exceptions.Forbidden:
        raise SecretRefError(f"{ref.text}: {_forbidden_reason(client, hvac.exceptions)}") from None
    except hvac.exceptions.InvalidPath:
        raise SecretRefError(
            f"{ref.text}: no secret at {ref.target} on {vault.address} (KV v2 mount {mount!r})"
        ) from None
    except hvac.exceptions.VaultError as exc:
        raise SecretRefError(
            f"{ref.text}: the Vault server at {vault.address} refused: {type(exc).__name__}"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise SecretRefError(
            f"{ref.text}: cannot reach the Vault server at {vault.address} ({type(exc).__name__})"
        ) from None
    data = answer.get("data", {}).get("data") or {}
    if ref.key not in data:
        keys = ", ".join(sorted(data)) or "none"
        raise SecretRefError(
            f"{ref.text}: the secret at {ref.target} has no key {ref.key!r}; its keys: {keys}"
        )
    value = data[ref.key]
    if not isinstance(value, str) or not value:
        raise SecretRefError(f"{ref.text}: key {ref.key!r} is not a non-empty string")
    return value


def _forbidden_reason(client: object, exceptions: object) -> str:
    """403 means an expired/revoked token or a policy that denies the path: ask the server which."""
    try:
        client.auth.token.lookup_self()  # type: ignore[attr-defined]
    except Exception:  # any failure here means the token itself is not usable
        return (
            "the Vault token is expired, revoked or invalid; "
            "get a fresh token (VAULT_TOKEN or secrets.vault.token_ref)"
        )
    return "permission denied: the Vault token's policy does not allow reading this path"
