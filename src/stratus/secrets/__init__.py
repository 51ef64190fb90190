"""Secrets by reference: a file names where a credential lives (``env:NAME``, ``file:PATH``,
``vault:MOUNT/PATH#KEY`` on a Vault-compatible server), never the credential itself.

This package resolves one reference and registers the value with :mod:`stratus.redact`; which fields of
the platform file hold secrets is :mod:`stratus.config.secret_fields`' business.
"""

from stratus.secrets.refs import (
    SecretRef,
    SecretRefError,
    VaultSettings,
    is_reference,
    parse_reference,
    resolve,
)

__all__ = ["SecretRef", "SecretRefError", "VaultSettings", "is_reference", "parse_reference", "resolve"]
