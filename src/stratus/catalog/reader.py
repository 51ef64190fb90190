"""Parse a SkyPilot v8 ``vms.csv`` into typed rows, one per (instance type, zone).

Columns are read by NAME because each cloud's v8 header orders them differently (and SkyPilot adds
columns over time); extra columns are ignored. Every number is checked here, so a malformed file fails
with its file, line and column instead of surfacing later as a wrong price.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TextIO

from stratus.errors import CatalogError
from stratus.limits import MAX_ACCELERATORS, MAX_MEMORY_GB, MAX_PRICE_USD, MAX_VCPUS

__all__ = ["REQUIRED_COLUMNS", "VmRow", "read_vm_rows"]

REQUIRED_COLUMNS = (
    "InstanceType",
    "AcceleratorName",
    "AcceleratorCount",
    "vCPUs",
    "MemoryGiB",
    "Price",
    "SpotPrice",
    "Region",
)
# The largest value each numeric column may hold (stratus.limits): 1e300 would overflow a plan's sums.
_MOST = {
    "AcceleratorCount": MAX_ACCELERATORS,
    "vCPUs": MAX_VCPUS,
    "MemoryGiB": MAX_MEMORY_GB,
    "Price": MAX_PRICE_USD,
    "SpotPrice": MAX_PRICE_USD,
}
# Azure's v8 file has no zones; AWS and GCP have this column.
_ZONE_COLUMN = "AvailabilityZone"


@dataclass(frozen=True)
class VmRow:
    """One catalog row with numbers parsed; None where the cell is empty."""

    line: int
    instance_type: str
    accelerator_name: str
    accelerator_count: Decimal | None
    vcpus: float
    memory_gb: float
    price: Decimal | None
    spot_price: Decimal | None
    region: str
    zone: str


class _Row:
    """Cell access by column name that knows where it is, so errors can point at line and column."""

    def __init__(self, cells: list[str], columns: Mapping[str, int], label: str, line: int) -> None:
        self.cells = cells
        self.columns = columns
        self.label = label
        self.line = line

    def text(self, name: str) -> str:
        index = self.columns.get(name)
        if index is None:
            return ""
        if index >= len(self.cells):
            raise CatalogError(
                f"row has {len(self.cells)} fields but the header has {len(self.columns)}; "
                "the row is cut short (re-download or fix the file)",
                file=self.label,
                line=self.line,
                column=index + 1,
                field=name,
            )
        return self.cells[index].strip()

    def number(self, name: str) -> Decimal | None:
        raw = self.text(name)
        if not raw:
            return None
        try:
            value = Decimal(raw)
        except InvalidOperation:
            value = Decimal("NaN")
        most = _MOST[name]
        problem = None
        if not value.is_finite() or value < 0:
            problem = f"{raw!r} is not a non-negative number; expected a decimal such as 0.096"
        elif value > most:
            problem = f"{raw!r} is more than {most:,}, the most a {name} may be"
        if problem:
            raise CatalogError(
                problem,
                file=self.label,
                line=self.line,
                column=self.columns[name] + 1,
                field=name,
            )
        return value


def _header(reader: Iterator[list[str]], label: str) -> dict[str, int]:
    try:
        names = next(reader)
    except StopIteration:
        raise CatalogError(
            "the file is empty; expected a SkyPilot v8 vms.csv with a header row", file=label, line=1
        ) from None
    columns = {name.strip(): index for index, name in enumerate(names)}
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            raise CatalogError(
                f"missing required column {name!r}; a SkyPilot v8 vms.csv header names "
                f"{', '.join(REQUIRED_COLUMNS)} (found: {', '.join(columns) or 'nothing'})",
                file=label,
                line=1,
                field=name,
            )
    return columns


def read_vm_rows(stream: TextIO, label: str) -> list[VmRow]:
    """All data rows of a v8 ``vms.csv``; raises CatalogError naming ``label``, line and column."""
    reader = csv.reader(stream)
    columns = _header(reader, label)
    rows: list[VmRow] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            row = _Row(cells, columns, label, reader.line_num)
            region = row.text("Region")
            if not region:
                raise CatalogError(
                    "empty Region; every row must name its region",
                    file=label,
                    line=reader.line_num,
                    column=columns["Region"] + 1,
                    field="Region",
                )
            rows.append(
                VmRow(
                    line=reader.line_num,
                    instance_type=row.text("InstanceType"),
                    accelerator_name=row.text("AcceleratorName"),
                    accelerator_count=row.number("AcceleratorCount"),
                    vcpus=float(row.number("vCPUs") or 0),
                    memory_gb=float(row.number("MemoryGiB") or 0),
                    price=row.number("Price"),
                    spot_price=row.number("SpotPrice"),
                    region=region,
                    zone=row.text(_ZONE_COLUMN),
                )
            )
    except csv.Error as exc:
        raise CatalogError(f"not valid CSV: {exc}", file=label, line=reader.line_num) from exc
    return rows
