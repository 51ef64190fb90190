"""Where a platform's state lives: ``.stratus/`` beside its file, or the database a URL names.

The CLI and the SDK both resolve state here, so a run started from Python and resumed from the shell
find the same database.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "STATE_DIRNAME",
    "STATE_FILENAME",
    "STATE_URL_ENV",
    "Layout",
    "default_url",
    "state_dir",
    "state_url",
]

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


class Layout:
    """The folders of ``.stratus/`` beside ``platform_file``, in one place (nothing created here).

    :class:`stratus.workspace.Workspace` adds what is loaded from them; code below it in the layers
    (the sandbox) needs only the paths.
    """

    def __init__(self, platform_file: Path) -> None:
        self.platform_file = platform_file

    @property
    def base_dir(self) -> Path:
        """The platform file's folder: relative ``file://`` roots and policy files resolve against it."""
        return self.platform_file.resolve().parent

    @property
    def state_dir(self) -> Path:
        """``.stratus/`` beside the platform file (not created here)."""
        return state_dir(self.platform_file)

    @property
    def state_file(self) -> Path:
        """The default SQLite state database, ``.stratus/state.db`` (used unless a URL names another)."""
        return self.state_dir / STATE_FILENAME

    @property
    def runs_dir(self) -> Path:
        """``.stratus/runs/``: a fresh folder per run, step and attempt."""
        return self.state_dir / "runs"

    @property
    def catalog_dir(self) -> Path:
        """``.stratus/catalog/``: imported catalogs, which replace the bundled tables they name."""
        return self.state_dir / "catalog"

    @property
    def serve_dir(self) -> Path:
        """``.stratus/serve/``: each deployment's record, logs and staged models in ``NAME/``."""
        return self.state_dir / "serve"

    @property
    def registry_cache_dir(self) -> Path:
        """Where models downloaded from the registry (to serve or promote them) are kept."""
        return self.serve_dir / "models" / "registry"

    @property
    def sandbox_dir(self) -> Path:
        """``.stratus/sandbox/``: the local sandbox's state file, token and data folders."""
        return self.state_dir / "sandbox"
