"""The environment variables a user sets to configure Stratus, in a module that imports nothing.

Every command line reads some of them before it knows which command runs (``stratus.cli.app``), so they
live apart from the modules that use them (the YAML reader, the secret resolver).
"""

from __future__ import annotations

__all__ = ["ALLOW_INLINE_ENV", "PLATFORM_ENV"]

#: Names the platform file for every command (and ``stratus.run``) that is not given ``--platform``.
PLATFORM_ENV = "STRATUS_PLATFORM"
#: Set to 1/true/yes to accept literal credentials in platform files (``--allow-inline-secrets`` sets it).
ALLOW_INLINE_ENV = "STRATUS_ALLOW_INLINE_SECRETS"
