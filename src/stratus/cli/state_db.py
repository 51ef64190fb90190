"""The state database a read-only command looks at, without creating one where none exists yet.

Asking what a run cost, or how much of a budget is left, must not leave a ``.stratus`` folder behind:
when the default SQLite file beside the platform file does not exist, there is nothing to read.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from stratus.errors import ConfigError, StratusError
from stratus.redact import display_url
from stratus.state import STATE_URL_ENV, Database, default_url, open_database
from stratus.workspace import Workspace

__all__ = ["open_existing"]


def open_existing(workspace: Workspace, state_url: str | None) -> tuple[Database | None, str]:
    """The state database and how to name it; None when the default SQLite file does not exist yet.

    ``state_url`` (a flag, else ``$STRATUS_STATE_URL`` as the flag's envvar) wins over the workspace's
    own file; a malformed URL is a ConfigError naming the flag.
    """
    if state_url is None:
        if not workspace.platform_file.is_file():
            raise ConfigError(
                f"no platform file at {workspace.platform_file}; run this in the platform's folder, "
                "or pass --platform FILE or --state-url URL",
                field="--platform",
            )
        folder = workspace.state_dir
        if not workspace.state_file.is_file():
            return None, str(folder)
        state_url = default_url(folder)
    shown = display_url(state_url)
    try:
        make_url(state_url)
    except ArgumentError as exc:
        raise ConfigError(
            f"{shown!r} is not a database URL; expected e.g. sqlite:///path/state.db",
            field=f"--state-url or ${STATE_URL_ENV}",
        ) from exc
    try:
        return open_database(state_url), shown
    except SQLAlchemyError as exc:
        raise StratusError(f"cannot open the state database {shown}: {exc}") from exc
