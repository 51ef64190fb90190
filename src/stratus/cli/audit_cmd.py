"""The audit trail: who ran which state-changing command, when, with which arguments, and how it ended.

:func:`audited` decides from the command line alone whether a command is recorded, and
:func:`record` appends the record once the command has finished — both called from one place,
``stratus.cli.app.main``, so no command records itself. ``stratus audit ls`` lists the records.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from stratus.cli.inputs import JSON, PLATFORM_HERE
from stratus.cli.output import console, print_json, stderr
from stratus.errors import ConfigError, StratusError
from stratus.workspace import Workspace

__all__ = ["ACTOR_ENV", "AUDITED", "app", "audited", "record"]

#: Who is recorded as having run a command; default: the OS user.
ACTOR_ENV = "STRATUS_ACTOR"
#: Commands that change state (runs, serving fleets, the registry, stores, the network) are recorded.
AUDITED = frozenset(
    {
        "run",
        "serve start",
        "serve stop",
        "serve drain",
        "serve undrain",
        "serve weights",
        "models promote",
        "storage repair",
        "runs cancel",
        "chaos kill-site",
        "chaos partition",
        "chaos delay",
        "catalog import",
    }
)
_GROUPS = frozenset({"serve", "models", "storage", "chaos", "catalog", "cost", "sandbox", "audit", "runs"})
#: Any flag that overrides a guard (``--allow-inline-secrets``, ``--allow-over-budget``, …) is recorded too.
_OVERRIDE_PREFIX = "--allow-"
_SINCE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

app = typer.Typer(help="The audit trail of state-changing commands.", no_args_is_help=True)


def _command_path(args: list[str]) -> str | None:
    words = [a for a in args if not a.startswith("-")][:2]
    if not words:
        return None
    return " ".join(words) if words[0] in _GROUPS and len(words) > 1 else words[0]


def audited(args: list[str]) -> str | None:
    """The command's name (``"serve drain"``) when it is to be recorded, else None."""
    command = _command_path(args)
    if command is None or any(a in ("--help", "-h") for a in args):
        return None
    if command in AUDITED or any(a.startswith(_OVERRIDE_PREFIX) for a in args):
        return command
    return None


def _option(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _state_url_for(args: list[str]) -> str:
    """The state database the command used: --state-url, $STRATUS_STATE_URL, or beside its platform."""
    explicit = _option(args, "--state-url")
    platform = _option(args, "--platform", "-p")
    pipeline = next((Path(a) for a in args if a.endswith((".yaml", ".yml")) and Path(a).is_file()), None)
    return Workspace.find(Path(platform) if platform else None, pipeline, state_url=explicit).state_url()


def actor() -> str:
    """``$STRATUS_ACTOR``, else the OS user."""
    try:
        fallback = getpass.getuser()
    except (KeyError, OSError):
        fallback = f"uid:{os.getuid()}"
    return os.environ.get(ACTOR_ENV) or fallback


def record(command: str, args: list[str], exit_code: int) -> None:
    """Append the record; a state database that cannot be found or written is a warning, never a new
    failure of the command (its own outcome stands)."""
    # Here, not at the top: every command line passes through this module (stratus.cli.app.main), and
    # only audited ones should pay for SQLAlchemy.
    from sqlalchemy.exc import SQLAlchemyError

    from stratus.state import open_database
    from stratus.state.audit import append_audit

    try:
        db = open_database(_state_url_for(args))
        append_audit(db, actor=actor(), command=command, arguments=args, exit_code=exit_code)
    except (StratusError, SQLAlchemyError, OSError) as exc:
        stderr().print(
            f"[yellow]warning:[/] the audit record of {command!r} was not written: {escape(str(exc))}"
        )


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``1h``/``30m``/``2d`` ago, or an ISO 8601 time (UTC when it has no zone)."""
    match = _SINCE.match(text.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{text!r} is neither a duration (30m, 1h, 2d) nor an ISO time (2026-12-03T09:00)",
            field="--since",
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


@app.command("ls")
def ls_command(
    since: str | None = typer.Option(None, "--since", help="Only records from then on: 1h, 30m, 2d or ISO."),
    platform: Path | None = PLATFORM_HERE,
    state_url_option: str | None = typer.Option(
        None,
        "--state-url",
        envvar="STRATUS_STATE_URL",
        help="The state database. Default: beside the platform.",
    ),
    as_json: bool = JSON,
) -> None:
    """List who ran which state-changing command, when, and how it ended (oldest first).

    Example: stratus audit ls --since 1h --json
    """
    from stratus.state.audit import audit_records

    start = parse_since(since) if since else None
    db = Workspace.find(platform, state_url=state_url_option).database
    records = audit_records(db, start)
    if as_json:
        print_json({"records": [r.to_json() for r in records]})
        return
    table = Table("when (UTC)", "actor", "command", "outcome", "exit", "arguments", title="audit trail")
    for r in records:
        outcome = "[green]ok[/]" if r.outcome == "ok" else "[red]failed[/]"
        when = r.at.strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            when, escape(r.actor), r.command, outcome, str(r.exit_code), escape(json.dumps(r.arguments))
        )
    console().print(table)
