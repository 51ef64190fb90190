"""Columns added to tables after their first release, added to an older database when it is opened.

SQLAlchemy's ``create_all`` creates missing tables but never a missing column, so a ``.stratus/state.db``
written by an earlier version would fail on the first query naming a newer column. Each added column is
listed here with how to fill it for the rows that predate it; opening a database adds what it lacks, in
one transaction per column, and is idempotent (two processes opening it at once both end with the column).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, MetaData, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from stratus.state import jsontext

__all__ = ["ADDED_COLUMNS", "AddedColumn", "add_missing_columns"]


@dataclass(frozen=True)
class AddedColumn:
    """A column of ``table`` newer than the table; ``backfill`` fills it for rows written before it."""

    table: str
    column: str
    backfill: Callable[[Connection], None] | None = None


def _sites_from_metrics(connection: Connection) -> None:
    """Multi-site attempts recorded their machines as ``metrics["sites"]`` before ``sites_json`` existed."""
    rows = connection.execute(
        text("SELECT id, metrics_json FROM step_runs WHERE metrics_json LIKE '%\"sites\"%'")
    )
    for attempt_id, metrics in rows.all():
        machines = jsontext.load(metrics, {}).get("sites")
        if isinstance(machines, list) and all(isinstance(s, str) for s in machines):
            connection.execute(
                text("UPDATE step_runs SET sites_json = :sites WHERE id = :id"),
                {"sites": jsontext.dump(machines), "id": attempt_id},
            )


#: In the order they were added.
ADDED_COLUMNS: tuple[AddedColumn, ...] = (AddedColumn("step_runs", "sites_json", _sites_from_metrics),)


def add_missing_columns(engine: Engine, metadata: MetaData) -> list[str]:
    """Add every column of :data:`ADDED_COLUMNS` the database lacks (``table.column``, as added).

    The column is declared as the model declares it, with its server default (so existing rows get a
    value) and NOT NULL when the model says so.
    """
    added: list[str] = []
    for change in ADDED_COLUMNS:
        if _has(engine, change.table, change.column):
            continue
        column = metadata.tables[change.table].c[change.column]
        ddl = f"ALTER TABLE {change.table} ADD COLUMN {change.column} {column.type.compile(engine.dialect)}"
        if column.server_default is not None:
            ddl += f" DEFAULT '{column.server_default.arg}'"  # type: ignore[attr-defined]
        if not column.nullable:
            ddl += " NOT NULL"
        try:
            with engine.begin() as connection:
                connection.execute(text(ddl))
                if change.backfill is not None:
                    change.backfill(connection)
        except SQLAlchemyError:
            if _has(engine, change.table, change.column):
                continue  # another process added it between our look and our ALTER: the same column
            raise
        added.append(f"{change.table}.{change.column}")
    return added


def _has(engine: Engine, table: str, column: str) -> bool:
    inspector = inspect(engine)
    return table not in inspector.get_table_names() or any(
        c["name"] == column for c in inspector.get_columns(table)
    )
