"""The cost ledger: every compute-second, stored byte-month and moved byte as a FOCUS 1.3 row.

The runner records usage as it happens (:func:`record_compute`, :func:`record_function`,
:func:`record_transfer`, :func:`record_storage`) and the plan it started from (:func:`record_plan`);
:func:`report` sums planned next to actual by any grouping, and :func:`focus_records` exports raw rows.
Money is integer micro-dollars in the database and :class:`~decimal.Decimal` everywhere else.
"""

from stratus.ledger.export import FOCUS_COLUMNS, focus_json_value, focus_records, to_focus_csv
from stratus.ledger.model import KINDS, Kind, LedgerRow, StratusPricing
from stratus.ledger.money import format_usd, from_micros, to_micros
from stratus.ledger.planned import record_plan
from stratus.ledger.record import (
    FOCUS_PRICING_CATEGORY,
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

__all__ = [
    "FOCUS_COLUMNS",
    "FOCUS_PRICING_CATEGORY",
    "GROUP_BY",
    "KINDS",
    "Kind",
    "LedgerRow",
    "Report",
    "ReportRow",
    "StratusPricing",
    "check_group_by",
    "focus_json_value",
    "focus_records",
    "format_usd",
    "from_micros",
    "latest_run_id",
    "record_compute",
    "record_function",
    "record_plan",
    "record_storage",
    "record_transfer",
    "report",
    "run_ids",
    "to_focus_csv",
    "to_micros",
]
