"""The cost ledger: every compute-second, stored byte-month and moved byte as a FOCUS 1.3 row.

The runner records usage as it happens (:func:`record_compute`, :func:`record_function`,
:func:`record_transfer`, :func:`record_storage`, each given the :class:`Where` of the site that bills it)
and the plan it started from (:func:`record_plan`);
:func:`report` sums planned next to actual by any grouping, and :func:`focus_records` exports raw rows.
Money is integer micro-dollars in the database and :class:`~decimal.Decimal` everywhere else.

Names load on first use: formatting money (``format_usd``) must not import SQLAlchemy or the planner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratus._lazy import lazy_names

if TYPE_CHECKING:
    from stratus.ledger.allocation import (
        ALLOCATION_COLUMNS,
        allocation_json,
        allocation_rows,
        to_allocation_csv,
    )
    from stratus.ledger.export import FOCUS_COLUMNS, focus_json_value, focus_records, focus_text, to_focus_csv
    from stratus.ledger.model import KINDS, Kind, LedgerRow, StratusPricing
    from stratus.ledger.money import format_usd, from_micros, to_micros
    from stratus.ledger.period import Month
    from stratus.ledger.planned import record_plan
    from stratus.ledger.record import (
        FOCUS_PRICING_CATEGORY,
        Charge,
        Where,
        record_compute,
        record_function,
        record_storage,
        record_transfer,
    )
    from stratus.ledger.report import (
        GROUP_BY,
        Report,
        ReportRow,
        check_group_by,
        latest_run_id,
        report,
        run_ids,
    )
    from stratus.ledger.spend import Scope, month_spend

__all__ = [
    "ALLOCATION_COLUMNS",
    "FOCUS_COLUMNS",
    "FOCUS_PRICING_CATEGORY",
    "GROUP_BY",
    "KINDS",
    "Charge",
    "Kind",
    "LedgerRow",
    "Month",
    "Report",
    "ReportRow",
    "Scope",
    "StratusPricing",
    "Where",
    "allocation_json",
    "allocation_rows",
    "check_group_by",
    "focus_json_value",
    "focus_records",
    "focus_text",
    "format_usd",
    "from_micros",
    "latest_run_id",
    "month_spend",
    "record_compute",
    "record_function",
    "record_plan",
    "record_storage",
    "record_transfer",
    "report",
    "run_ids",
    "to_allocation_csv",
    "to_focus_csv",
    "to_micros",
]

# Public name → (module, attribute) it comes from; loaded on first use (stratus._lazy).
_SOURCES: dict[str, tuple[str, str]] = {
    "ALLOCATION_COLUMNS": ("stratus.ledger.allocation", "ALLOCATION_COLUMNS"),
    "allocation_json": ("stratus.ledger.allocation", "allocation_json"),
    "allocation_rows": ("stratus.ledger.allocation", "allocation_rows"),
    "to_allocation_csv": ("stratus.ledger.allocation", "to_allocation_csv"),
    "FOCUS_COLUMNS": ("stratus.ledger.export", "FOCUS_COLUMNS"),
    "focus_json_value": ("stratus.ledger.export", "focus_json_value"),
    "focus_records": ("stratus.ledger.export", "focus_records"),
    "focus_text": ("stratus.ledger.export", "focus_text"),
    "to_focus_csv": ("stratus.ledger.export", "to_focus_csv"),
    "KINDS": ("stratus.ledger.model", "KINDS"),
    "Kind": ("stratus.ledger.model", "Kind"),
    "LedgerRow": ("stratus.ledger.model", "LedgerRow"),
    "StratusPricing": ("stratus.ledger.model", "StratusPricing"),
    "format_usd": ("stratus.ledger.money", "format_usd"),
    "from_micros": ("stratus.ledger.money", "from_micros"),
    "to_micros": ("stratus.ledger.money", "to_micros"),
    "Month": ("stratus.ledger.period", "Month"),
    "record_plan": ("stratus.ledger.planned", "record_plan"),
    "FOCUS_PRICING_CATEGORY": ("stratus.ledger.record", "FOCUS_PRICING_CATEGORY"),
    "Charge": ("stratus.ledger.record", "Charge"),
    "Where": ("stratus.ledger.record", "Where"),
    "record_compute": ("stratus.ledger.record", "record_compute"),
    "record_function": ("stratus.ledger.record", "record_function"),
    "record_storage": ("stratus.ledger.record", "record_storage"),
    "record_transfer": ("stratus.ledger.record", "record_transfer"),
    "GROUP_BY": ("stratus.ledger.report", "GROUP_BY"),
    "Report": ("stratus.ledger.report", "Report"),
    "ReportRow": ("stratus.ledger.report", "ReportRow"),
    "check_group_by": ("stratus.ledger.report", "check_group_by"),
    "latest_run_id": ("stratus.ledger.report", "latest_run_id"),
    "report": ("stratus.ledger.report", "report"),
    "run_ids": ("stratus.ledger.report", "run_ids"),
    "Scope": ("stratus.ledger.spend", "Scope"),
    "month_spend": ("stratus.ledger.spend", "month_spend"),
}

__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
