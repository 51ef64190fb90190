"""One SQLAlchemy database for all run state: SQLite beside the platform file, or any URL (PostgreSQL).

Every package that persists something declares its tables on :class:`Base`; ``open_database`` creates
what is missing, so a fresh platform folder needs no migration step.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

__all__ = ["Base", "Database", "default_url", "open_database"]

STATE_FILENAME = "state.db"


class Base(DeclarativeBase):
    """Declarative base for every Stratus table."""


class Database:
    """An engine plus a session factory; sessions are short and one per state change."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    def session(self) -> Session:
        """A new session; use it as a context manager and commit before acknowledging the action."""
        return self.sessions()


def default_url(state_dir: Path) -> str:
    """``sqlite:///<state_dir>/state.db``; the folder is created on demand."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{state_dir / STATE_FILENAME}"


def open_database(url: str) -> Database:
    """Connect and create missing tables; SQLite gets WAL and a busy timeout so kill -9 loses nothing."""
    engine = create_engine(url, future=True)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    Base.metadata.create_all(engine)
    return Database(engine)
