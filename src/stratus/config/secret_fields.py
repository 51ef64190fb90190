"""Every secret-bearing field of a platform file: resolve its reference, or refuse a literal credential.

Secret-bearing fields: credential keys in ``sites.*.storage_options`` (any nesting, the names of
:data:`stratus.redact.SECRET_OPTION_KEYS`), URLs with a password (``sites.*.storage``,
``registry.tracking_uri``) and ``secrets.vault.token_ref``. Each may be written as ``env:NAME``,
``file:PATH`` (relative to the platform file) or ``vault:MOUNT/PATH#KEY``; any other string field may
also be a reference (a whole URL kept in Vault). A literal credential is a ConfigError naming the file,
line and field, unless inline secrets are allowed (``--allow-inline-secrets`` or
``STRATUS_ALLOW_INLINE_SECRETS=1``), which the test suites and the legacy sandbox file use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stratus.config.env import ALLOW_INLINE_ENV
from stratus.config.source import Located, PathKey
from stratus.redact import NOT_SECRET, SECRET_OPTION_KEYS
from stratus.secrets import SecretRefError, VaultSettings, is_reference, parse_reference, resolve

__all__ = ["ALLOW_INLINE_ENV", "inline_allowed", "resolve_platform_secrets"]

_USE_REFS = "write a reference instead: env:NAME, file:PATH or vault:MOUNT/PATH#KEY (docs/secrets.md)"


def inline_allowed() -> bool:
    """Whether literal credentials are accepted (``STRATUS_ALLOW_INLINE_SECRETS``)."""
    return os.environ.get(ALLOW_INLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def resolve_platform_secrets(located: Located) -> None:
    """Replace every reference in ``located.data`` by its value (registered for redaction) and refuse
    literal credentials; errors point at the field's line and name the reference, never a value."""
    data = located.data
    if not isinstance(data, dict):
        return
    base = Path(located.file).resolve().parent
    vault = _vault_settings(located, base)
    walker = _Walker(located, base, vault, inline_allowed())
    sites = data.get("sites")
    if isinstance(sites, dict):
        for name, site in sites.items():
            if not isinstance(site, dict):
                continue
            walker.url(site, "storage", ("sites", name, "storage"))
            options = site.get("storage_options")
            if isinstance(options, dict):
                walker.options(options, ("sites", name, "storage_options"))
    registry = data.get("registry")
    if isinstance(registry, dict):
        walker.url(registry, "tracking_uri", ("registry", "tracking_uri"))


def _vault_settings(located: Located, base: Path) -> VaultSettings:
    """``secrets.vault.address`` / ``token_ref`` from the file, else ``VAULT_ADDR`` / ``VAULT_TOKEN``."""
    section = located.data.get("secrets")
    vault = section.get("vault") if isinstance(section, dict) else None
    address = os.environ.get("VAULT_ADDR") or None
    token = os.environ.get("VAULT_TOKEN") or None
    if isinstance(vault, dict):
        if isinstance(vault.get("address"), str):
            address = vault["address"]
        token_ref = vault.get("token_ref")
        if token_ref is not None:
            where: PathKey = ("secrets", "vault", "token_ref")
            if not isinstance(token_ref, str) or not token_ref.startswith(("env:", "file:")):
                raise located.error(
                    where, "token_ref must be env:NAME or file:PATH (a token is never inline)"
                )
            try:
                token = resolve(parse_reference(token_ref), base=base, vault=VaultSettings(None, None))
            except SecretRefError as exc:
                raise located.error(where, str(exc)) from None
    return VaultSettings(address, token)


class _Walker:
    def __init__(self, located: Located, base: Path, vault: VaultSettings, allow_inline: bool) -> None:
        self.located = located
        self.base = base
        self.vault = vault
        self.allow_inline = allow_inline

    def resolve(self, holder: dict[Any, Any] | list[Any], key: Any, where: PathKey) -> bool:
        """Resolve ``holder[key]`` in place if it is a reference; whether it was one."""
        value = holder[key]
        if not is_reference(value):
            return False
        try:
            holder[key] = resolve(parse_reference(value), base=self.base, vault=self.vault)
        except SecretRefError as exc:
            raise self.located.error(where, str(exc)) from None
        return True

    def refuse(self, where: PathKey, what: str) -> None:
        if not self.allow_inline:
            raise self.located.error(
                where, f"{what} is written inline; {_USE_REFS}, or pass --allow-inline-secrets"
            )

    def url(self, holder: dict[str, Any], key: str, where: PathKey) -> None:
        if key not in holder or self.resolve(holder, key, where):
            return
        value = holder[key]
        if isinstance(value, str) and "://" in value and _has_password(value):
            self.refuse(where, "a password in the URL")

    def options(self, options: dict[Any, Any] | list[Any], where: PathKey) -> None:
        items = options.items() if isinstance(options, dict) else enumerate(options)
        for key, value in list(items):
            here = (*where, key)
            if isinstance(value, dict | list):
                self.options(value, here)
            elif isinstance(value, str) and not self.resolve(options, key, here):
                secret_key = str(key).lower().replace("-", "_") in SECRET_OPTION_KEYS
                if secret_key and value.strip().lower() not in NOT_SECRET:
                    self.refuse(here, "a credential")
                elif "://" in value and _has_password(value):
                    self.refuse(here, "a password in the URL")


def _has_password(url: str) -> bool:
    try:
        return bool(urlsplit(url.strip()).password)
    except ValueError:
        return False
