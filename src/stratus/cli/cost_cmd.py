"""``stratus cost``: what runs cost, planned next to actual, budgets, and the raw ledger as an export.

A thin shell over :mod:`stratus.ledger`: it finds the state database (beside the platform file, or
``--state-url``), picks the run or the month, and prints a table, one JSON object or CSV. The export is
FOCUS 1.3, or the same rows with OpenCost's allocation columns (``--format allocation``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from stratus.budget import BudgetLine, budget_lines, usd_text
from stratus.cli.output import console, print_json
from stratus.cli.state_db import open_existing
from stratus.config.env import PLATFORM_ENV
from stratus.errors import ConfigError
from stratus.ledger import (
    FOCUS_COLUMNS,
    GROUP_BY,
    Month,
    Report,
    ReportRow,
    Scope,
    allocation_json,
    allocation_rows,
    check_group_by,
    focus_json_value,
    focus_records,
    from_micros,
    month_spend,
    report,
    run_ids,
    to_allocation_csv,
    to_focus_csv,
)
from stratus.state import Database
from stratus.units import format_usd as money_text
from stratus.workspace import Workspace

__all__ = ["app", "export_command", "report_command"]

app = typer.Typer(
    help=(
        "What runs cost: planned next to actual by team, project, provider, site or step, and the raw "
        "ledger as a FOCUS 1.3 export. Example: stratus cost report --by provider,step"
    ),
    no_args_is_help=True,
)

_EMPTY = (
    "No costs recorded yet: the ledger in {where} is empty. Run a pipeline first "
    "(stratus run PIPELINE), then ask again."
)

_PLATFORM = typer.Option(
    Path("stratus.yaml"),
    "--platform",
    "-p",
    envvar=PLATFORM_ENV,
    help="Platform file; its state database is .stratus/state.db beside it. Example: -p team/stratus.yaml",
)
_STATE_URL = typer.Option(
    None,
    "--state-url",
    envvar="STRATUS_STATE_URL",
    help="SQLAlchemy URL of the state database, instead of the one beside the platform file. "
    "Example: --state-url postgresql+psycopg://stratus@db/stratus",
)
_RUN = typer.Option(None, "--run", help="The run to show. Default: the run that started last.")
_ALL_RUNS = typer.Option(False, "--all-runs", help="Every run in the ledger instead of one.")
_MONTH = typer.Option(
    None,
    "--month",
    help="Only charges that start in this calendar month (UTC), of every run unless --run. Example: 2025-03",
)


@app.command("report")
def report_command(
    by: str = typer.Option(
        "step",
        "--by",
        help=f"Comma-separated grouping, any of: {', '.join(GROUP_BY)}. Example: --by team,provider",
    ),
    run: str | None = _RUN,
    all_runs: bool = _ALL_RUNS,
    month: str | None = _MONTH,
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object for scripts."),
    as_csv: bool = typer.Option(False, "--csv", help="Print the grouped rows as CSV (no total line)."),
    platform: Path = _PLATFORM,
    state_url: str | None = _STATE_URL,
) -> None:
    """Planned and actual cost side by side, with the on-demand list price of what actually ran.

    Example: stratus cost report --by team,project,provider --month 2025-03

    actual is what was paid (spot and reserved rates included); list is the same usage at on-demand
    prices; planned comes from the plan the run started with. With `budgets:` in the platform file, a
    second table (and "budgets" in --json) shows each budget for the month (--month, else this one):
    budget, spent, remaining and % used. Exit codes: 0 shown (also when the ledger is empty), 2 usage
    or config error.
    """
    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv", param_hint="--json/--csv")
    try:
        groups = check_group_by(by.split(","))
    except ValueError as exc:
        raise ConfigError(str(exc), field="--by") from exc
    chosen_month = _parse_month(month)
    workspace = Workspace(platform)
    budgets_of = workspace.platform.budgets if platform.is_file() else None
    db, where = open_existing(workspace, state_url)
    result = Report(groups, None, (), ReportRow((), 0, 0, 0))
    spent: dict[Scope, dict[str, int]] = {}
    budget_month = chosen_month or Month.current()
    if db is not None:
        try:
            chosen = _choose_run(db, run, all_runs or (chosen_month is not None and run is None))
            if chosen is not None or all_runs or chosen_month is not None:
                result = report(db, by=groups, run_id=chosen, month=chosen_month)
            if budgets_of is not None:
                spent = {s: month_spend(db, budget_month, s) for s in ("team", "project")}
        finally:
            db.engine.dispose()
    budgets = budget_lines(budgets_of, month=budget_month, spent=spent)
    if as_json:
        payload = result.to_json()
        payload["month"] = None if chosen_month is None else str(chosen_month)
        if budgets_of is not None:
            payload["budgets"] = [_budget_json(line) for line in budgets]
        print_json(payload)
    elif as_csv:
        typer.echo(result.to_csv(), nl=False)
    else:
        if result.empty:
            console().print(_EMPTY.format(where=where))
        else:
            _print_report(result, chosen_month)
        _print_budgets(budgets)


@app.command("export")
def export_command(
    run: str | None = _RUN,
    all_runs: bool = _ALL_RUNS,
    month: str | None = _MONTH,
    export_format: str = typer.Option(
        "focus",
        "--format",
        help="focus: the FOCUS 1.3 columns. allocation: the same plus OpenCost's allocation columns "
        "(properties.namespace = team, properties.labels.team/project, cpuCost, gpuCost, pvCost, "
        "networkCost, totalCost, ...), as Kubecost/OpenCost users read them.",
    ),
    include_planned: bool = typer.Option(
        False,
        "--include-planned",
        help="Also export the plan's rows (x_Kind=planned); left out by default so tools do not "
        "count a run twice.",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to this file instead of standard output."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object {columns, rows} instead of CSV; money as exact strings."
    ),
    platform: Path = _PLATFORM,
    state_url: str | None = _STATE_URL,
) -> None:
    """The raw ledger rows as FOCUS 1.3 CSV: the standard's column ids, x_ columns for Stratus's own.

    Example: stratus cost export --all-runs -o costs.focus.csv
    Example: stratus cost export --format allocation --month 2025-03 -o allocation.csv

    Money is in US dollars with six decimal places, times are ISO 8601 UTC, Tags is a JSON object.
    """
    if export_format not in ("focus", "allocation"):
        raise ConfigError(
            f"{export_format!r} is not an export format; expected focus or allocation", field="--format"
        )
    chosen_month = _parse_month(month)
    db, _ = open_existing(Workspace(platform), state_url)
    records: list[dict[str, Any]] = []
    if db is not None:
        try:
            chosen = _choose_run(db, run, all_runs or (chosen_month is not None and run is None))
            if chosen is not None or all_runs or chosen_month is not None:
                records = focus_records(
                    db, run_id=chosen, include_planned=include_planned, month=chosen_month
                )
        finally:
            db.engine.dispose()
    if export_format == "allocation":
        rows = allocation_rows(records)
        window = None if chosen_month is None else (chosen_month.start, chosen_month.end)
        text = (
            json.dumps(allocation_json(rows, window), indent=2) + "\n" if as_json else to_allocation_csv(rows)
        )
    elif as_json:
        payload = {
            "columns": list(FOCUS_COLUMNS),
            "rows": [{k: focus_json_value(v) for k, v in r.items()} for r in records],
        }
        text = json.dumps(payload, indent=2) + "\n"
    else:
        text = to_focus_csv(records)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


def _choose_run(db: Database, run: str | None, all_runs: bool) -> str | None:
    """The run to report: ``--run``, checked against the ledger, else the latest; None for all runs."""
    if all_runs:
        if run is not None:
            raise ConfigError("choose one of --run and --all-runs", field="--run")
        return None
    known = run_ids(db)
    if run is None:
        return known[0] if known else None
    if run not in known:
        listed = ", ".join(known[:10]) if known else "none yet"
        raise ConfigError(
            f"run {run!r} has no ledger rows; runs with costs, latest first: {listed}", field="--run"
        )
    return run


def _parse_month(text: str | None) -> Month | None:
    if text is None:
        return None
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise ConfigError(str(exc), field="--month") from exc


def _budget_json(line: BudgetLine) -> dict[str, Any]:
    return {
        "scope": line.scope,
        "name": line.name,
        "month": str(line.month),
        "budget_usd": float(from_micros(line.limit_micro_usd)),
        "spent_usd": float(from_micros(line.spent_micro_usd)),
        "remaining_usd": float(from_micros(line.remaining_micro_usd)),
        "used_pct": round(100 * line.used, 2),
        "alerts_reached": list(line.reached),
        "over": line.over,
    }


def _print_budgets(lines: list[BudgetLine]) -> None:
    if not lines:
        return
    table = Table(
        "budget",
        "budget (USD)",
        "spent",
        "remaining",
        "% used",
        "alerts reached",
        title=f"Budgets, {lines[0].month} (spent: actual charges of every run that month)",
    )
    for line in lines:
        reached = ", ".join(f"{t:.0%}" for t in line.reached) or "-"
        used = f"{100 * line.used:.1f}%"
        table.add_row(
            line.label,
            usd_text(line.limit_micro_usd),
            usd_text(line.spent_micro_usd),
            usd_text(line.remaining_micro_usd),
            f"[bold red]{used}[/]" if line.over else used,
            reached,
        )
    console().print(table)


def _print_report(result: Report, month: Month | None = None) -> None:
    title = f"Cost of run {result.run_id}" if result.run_id else "Cost of all runs"
    if month is not None:
        title += f" in {month}"
    labels = result.by or ("",)
    table = Table(
        *labels,
        title=f"{title} (USD)",
        caption="actual: paid · list: at on-demand prices · planned: the run's plan",
    )
    for heading in ("planned", "actual", "Δ vs plan", "list"):
        table.add_column(heading, justify="right")
    for row in result.rows if result.by else ():
        table.add_row(*("(run-wide)" if v is None else v for v in row.group), *_amounts(row))
    table.add_section()
    table.add_row("total", *[""] * (len(labels) - 1), *_amounts(result.totals))
    console().print(table)


def _amounts(row: ReportRow) -> list[str]:
    delta = row.actual_micro_usd - row.planned_micro_usd
    sign = "+" if delta > 0 else ""
    return [
        money_text(from_micros(row.planned_micro_usd)),
        money_text(from_micros(row.actual_micro_usd)),
        f"{sign}{money_text(from_micros(delta))}",
        money_text(from_micros(row.list_micro_usd)),
    ]
