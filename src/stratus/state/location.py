"""Where a platform's state lives: ``.stratus/`` beside its file, or the database a URL names.

The CLI and the SDK both resolve state here, so a run started from Python and resumed from the shell
find the same database.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["STATE_DIRNAME", "STATE_FILENAME", "STATE_URL_ENV", "default_url", "state_dir", "state_url"]

STATE_DIRNAME = ".stratus"
STATE_FILENAME = "state.db"
STATE_URL_ENV = "STRATUS_STATE_URL"


def default_url(state_dir: Path) -> str:
    """``sqlite:///<state_dir>/state.db``; the folder is created on demand."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{state_dir / STATE_FILENAME}"


def state_dir(platform_file: Path) -> Path:
    """The platform's state folder (database, run folders, logs, imported catalog): beside its file."""
    return platform_file.resolve().parent / STATE_DIRNAME


def state_url(platform_file: Path, explicit: str | None = None) -> str:
    """``explicit``, else ``$STRATUS_STATE_URL``, else the SQLite file in :func:`state_dir`."""
    return explicit or os.environ.get(STATE_URL_ENV) or default_url(state_dir(platform_file))
