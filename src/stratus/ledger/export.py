"""The raw ledger as a FOCUS 1.3 export: the standard's column ids, decimal money, ISO 8601 UTC times.

This is the file a FinOps tool ingests next to the clouds' own FOCUS exports, so the column names are
the specification's exactly and custom columns carry the ``x_`` prefix.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect, select

from stratus.ledger import money
from stratus.ledger.model import LedgerRow
from stratus.ledger.period import Month
from stratus.state import Database

__all__ = ["FOCUS_COLUMNS", "focus_json_value", "focus_records", "focus_text", "to_focus_csv"]

# FOCUS column id → model attribute, for every column but the surrogate key, in table order.
_ATTRIBUTES: dict[str, str] = {
    column.name: prop.key
    for prop in inspect(LedgerRow).column_attrs
    for column in prop.columns
    if column.name != "id"
}
FOCUS_COLUMNS: tuple[str, ...] = tuple(c.name for c in LedgerRow.__table__.columns if c.name != "id")
_MONEY = {"BilledCost", "EffectiveCost", "ListCost", "ContractedCost"}


def focus_records(
    db: Database, *, run_id: str | None, include_planned: bool = False, month: Month | None = None
) -> list[dict[str, Any]]:
    """Ledger rows keyed by FOCUS column id: money as Decimal dollars, times aware UTC, Tags a dict.

    ``month`` keeps the rows whose charge period starts in it (with ``run_id`` None: every run's).

    Planned rows are left out unless ``include_planned``: they are forecasts, not charges, and a tool
    summing the export would otherwise count a run twice.
    """
    query = select(LedgerRow).order_by(LedgerRow.charge_period_start, LedgerRow.id)
    if run_id is not None:
        query = query.where(LedgerRow.run_id == run_id)
    if not include_planned:
        query = query.where(LedgerRow.kind != "planned")
    if month is not None:
        query = query.where(
            LedgerRow.charge_period_start >= month.start, LedgerRow.charge_period_start < month.end
        )
    with db.session() as session:
        found = session.scalars(query).all()
    records: list[dict[str, Any]] = []
    for row in found:
        record: dict[str, Any] = {}
        for name in FOCUS_COLUMNS:
            value = getattr(row, _ATTRIBUTES[name])
            record[name] = money.from_micros(value) if name in _MONEY else value
        records.append(record)
    return records


def to_focus_csv(records: Sequence[dict[str, Any]]) -> str:
    """CSV with a header of exactly :data:`FOCUS_COLUMNS`; Tags as a JSON object, empty for null."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FOCUS_COLUMNS)
    for record in records:
        writer.writerow([focus_text(record[name]) for name in FOCUS_COLUMNS])
    return out.getvalue()


def focus_json_value(value: Any) -> Any:
    """A record value as JSON wants it: exact decimal strings for money, ISO 8601 for times."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return _iso(value)
    return value


def focus_text(value: Any) -> str:
    """A record value as CSV text: empty for null, Tags as compact JSON, money and times as in JSON."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(focus_json_value(value))


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
