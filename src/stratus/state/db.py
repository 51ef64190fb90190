"""One SQLAlchemy database for all run state: SQLite beside the platform file, or any URL (PostgreSQL).

Every package that persists something declares its tables on :class:`Base`; ``open_database`` creates
what is missing, so a fresh platform folder needs no migration step, and adds the columns newer versions
declare to an older database (:mod:`stratus.state.upgrade`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Engine, Text, TypeDecorator, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from stratus.errors import ConfigError, StratusError
from stratus.redact import display_url, register_url
from stratus.state import jsontext
from stratus.state.location import default_url
from stratus.state.upgrade import add_missing_columns

__all__ = [
    "TABLE_MODULES",
    "Base",
    "Database",
    "JsonText",
    "UtcDateTime",
    "default_url",
    "open_database",
]

#: The modules that declare tables on :class:`Base`. Packages load their names lazily (stratus._lazy), so
#: a table is not declared just because its package was imported: every database gets them all here.
TABLE_MODULES = ("stratus.state.models", "stratus.state.locks", "stratus.ledger.model")


class Base(DeclarativeBase):
    """Declarative base for every Stratus table."""


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (which drops zones) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone; pass an aware datetime such as datetime.now(UTC)")
        utc = value.astimezone(UTC)
        # SQLite stores text and drops the zone; PostgreSQL's timestamptz keeps it, so give it one.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JsonText(TypeDecorator[Any]):
    """A JSON value kept as text: Python values in, decoded values out (``empty()`` for a NULL column).

    Text, not a JSON column type, so the columns existing databases have keep their type and bytes.
    """

    impl = Text
    cache_ok = True

    def __init__(self, empty: Callable[[], Any]) -> None:
        super().__init__()
        self.empty = empty

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else jsontext.dump(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return jsontext.load(value, self.empty())


class Database:
    """An engine plus a session factory; sessions are short and one per state change."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    def session(self) -> Session:
        """A new session; use it as a context manager and commit before acknowledging the action."""
        return self.sessions()


def open_database(url: str) -> Database:
    """Connect and create missing tables; SQLite gets WAL and a busy timeout so kill -9 loses nothing.

    A malformed URL or a missing driver is a ConfigError, an unreachable server a StratusError, both
    naming the URL with its password hidden.
    """
    register_url(url)
    shown = display_url(url)
    try:
        make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"{shown!r} is not a database URL; expected e.g. sqlite:///path/state.db or "
            "postgresql+psycopg://user@host/db",
            field="--state-url or $STRATUS_STATE_URL",
        ) from exc
    try:
        engine = create_engine(url, future=True)
    except (ImportError, NoSuchModuleError) as exc:
        raise ConfigError(
            f"no driver for the state database {shown} ({exc}); for PostgreSQL install "
            "'stratus[postgres]' and use a postgresql+psycopg:// URL",
            field="--state-url or $STRATUS_STATE_URL",
        ) from exc
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    for module in TABLE_MODULES:  # declared before create_all, whatever the caller imported so far
        importlib.import_module(module)
    try:
        Base.metadata.create_all(engine)
        add_missing_columns(engine, Base.metadata)
    except SQLAlchemyError as exc:
        raise StratusError(f"cannot open the state database {shown}: {exc}") from exc
    return Database(engine)
