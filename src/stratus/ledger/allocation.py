"""The ledger as a Kubecost/OpenCost allocation export: every FOCUS column, plus allocation by label.

OpenCost's ``/allocation`` API names a workload by ``properties`` (cluster, node, namespace, controller,
controllerKind, pod, labels) and splits its cost into ``cpuCost``, ``gpuCost``, ``ramCost``, ``pvCost``,
``networkCost``, ``sharedCost``, ``externalCost`` and ``totalCost`` over a ``window``. Each ledger row is
mapped onto those names (docs/configuration.md has the table):

- cluster = the site, node = the SKU (offering), namespace = the team tag, controller = the run,
  controllerKind = ``pipeline-run``, pod = the step; labels = the row's tags (team, project, ...).
- a machine's whole price goes to ``gpuCost`` when it carries accelerators, else ``cpuCost`` (a cloud
  price does not split CPU from memory, so ``ramCost`` stays 0); storage is ``pvCost``, copies
  between sites ``networkCost``; ``totalCost`` is the FOCUS EffectiveCost.

The CSV flattens the nesting with dots (``properties.labels.team``), as ``jq``/``json_normalize`` do; the
JSON also carries the rows summed per ``namespace,label:project`` in OpenCost's response shape
(``data``: a list of sets, each name → allocation), which is what its UI and API clients read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from stratus.ledger.export import FOCUS_COLUMNS, focus_json_value, focus_text

__all__ = ["ALLOCATION_COLUMNS", "UNALLOCATED", "allocation_json", "allocation_rows", "to_allocation_csv"]

#: OpenCost's name for the share of cost that carries no value for the aggregated label.
UNALLOCATED = "__unallocated__"
_COSTS = ("cpuCost", "gpuCost", "ramCost", "pvCost", "networkCost", "sharedCost", "externalCost", "totalCost")
ALLOCATION_COLUMNS: tuple[str, ...] = (
    "name",
    "window.start",
    "window.end",
    "minutes",
    "properties.cluster",
    "properties.node",
    "properties.namespace",
    "properties.controller",
    "properties.controllerKind",
    "properties.pod",
    "properties.labels.team",
    "properties.labels.project",
    *_COSTS,
)
_CONTROLLER_KIND = "pipeline-run"
_ZERO = Decimal("0.000000")  # six places, like every money value of the export


def allocation_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each FOCUS record (from :func:`stratus.ledger.focus_records`) with its allocation columns added."""
    return [{**record, **_allocation(record)} for record in records]


def _allocation(record: dict[str, Any]) -> dict[str, Any]:
    tags: dict[str, str] = record.get("Tags") or {}
    team = record.get("x_Team") or UNALLOCATED
    step = record.get("x_Step") or record["ResourceName"]
    start: datetime = record["ChargePeriodStart"]
    end: datetime = record["ChargePeriodEnd"]
    total: Decimal = record["EffectiveCost"]
    costs = dict.fromkeys(_COSTS, _ZERO)
    costs[_cost_column(record)] = total
    costs["totalCost"] = total
    return {
        "name": "/".join([record["x_Site"], team, record["x_RunId"], step]),
        "window.start": start,
        "window.end": end,
        "minutes": round((end - start).total_seconds() / 60, 6),
        "properties.cluster": record["x_Site"],
        "properties.node": record["SkuId"],
        "properties.namespace": team,
        "properties.controller": record["x_RunId"],
        "properties.controllerKind": _CONTROLLER_KIND,
        "properties.pod": step,
        "properties.labels.team": tags.get("team", ""),
        "properties.labels.project": tags.get("project", ""),
        **costs,
    }


def _cost_column(record: dict[str, Any]) -> str:
    kind = record["x_Kind"]
    if kind == "storage":
        return "pvCost"
    if kind == "transfer":
        return "networkCost"
    if kind == "compute":
        return "gpuCost" if record["ServiceCategory"] == "AI and Machine Learning" else "cpuCost"
    return "externalCost"  # planned rows, when asked for: a forecast, not a resource


def to_allocation_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV with the FOCUS columns, then :data:`ALLOCATION_COLUMNS`; money as exact decimal text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = (*FOCUS_COLUMNS, *ALLOCATION_COLUMNS)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([focus_text(row[name]) for name in columns])
    return out.getvalue()


def allocation_json(
    rows: Sequence[dict[str, Any]], window: tuple[datetime, datetime] | None
) -> dict[str, Any]:
    """``{columns, rows, aggregate, window, data}``: the flat rows, and OpenCost's aggregated set."""
    columns = (*FOCUS_COLUMNS, *ALLOCATION_COLUMNS)
    flat = [{name: focus_json_value(row[name]) for name in columns} for row in rows]
    return {
        "columns": list(columns),
        "rows": flat,
        "aggregate": "namespace,label:project",
        "window": None
        if window is None
        else {"start": focus_json_value(window[0]), "end": focus_json_value(window[1])},
        "data": [_aggregate(rows)],
    }


def _aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """name (``team/project``) → an OpenCost Allocation summing its rows; costs as JSON numbers."""
    sets: dict[str, dict[str, Any]] = {}
    for row in rows:
        project = row["properties.labels.project"] or UNALLOCATED
        name = f"{row['properties.namespace']}/{project}"
        entry = sets.get(name)
        if entry is None:
            entry = sets[name] = {
                "name": name,
                "properties": {
                    "namespace": row["properties.namespace"],
                    "labels": {"project": project},
                    "cluster": row["properties.cluster"],
                },
                "window": {"start": row["window.start"], "end": row["window.end"]},
                "minutes": 0.0,
                **dict.fromkeys(_COSTS, _ZERO),
            }
        if entry["properties"].get("cluster") != row["properties.cluster"]:
            entry["properties"].pop("cluster", None)  # OpenCost drops a property its members disagree on
        entry["window"]["start"] = min(entry["window"]["start"], row["window.start"])
        entry["window"]["end"] = max(entry["window"]["end"], row["window.end"])
        entry["minutes"] += row["minutes"]
        for cost in _COSTS:
            entry[cost] += row[cost]
    return {
        name: {
            **entry,
            "window": {k: focus_json_value(v) for k, v in entry["window"].items()},
            "start": focus_json_value(entry["window"]["start"]),
            "end": focus_json_value(entry["window"]["end"]),
            "minutes": round(entry["minutes"], 6),
            **{cost: float(entry[cost]) for cost in _COSTS},
        }
        for name, entry in sets.items()
    }
