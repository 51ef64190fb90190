"""The project's rule for a name that becomes a folder or a URL segment (a deployment's name).

One rule, so that a name the CLI accepts is always safe as ``.stratus/serve/NAME/`` and in
``/v2/models/NAME/...``: letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit (so never
``.``, ``..`` or a hidden folder), at most 64 characters.
"""

from __future__ import annotations

import re

from stratus.errors import ConfigError

__all__ = ["SAFE_NAME", "check_safe_name"]

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_safe_name(value: str, field: str) -> str:
    """``value`` unchanged when it is a safe name; else ConfigError (exit 2) naming ``field``."""
    if not SAFE_NAME.fullmatch(value):
        raise ConfigError(
            f"{value!r} is not a usable name; expected letters, digits, '_', '.' or '-', starting with a "
            "letter or digit, at most 64 characters",
            field=field,
        )
    return value
