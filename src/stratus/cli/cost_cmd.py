"""``stratus cost``: what runs cost, planned next to actual, and the raw ledger as a FOCUS export.

A thin shell over :mod:`stratus.ledger`: it finds the state database (beside the platform file, or
``--state-url``), picks the run, and prints a table, one JSON object or CSV.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from stratus.cli.output import console, print_json
from stratus.errors import ConfigError, StratusError
from stratus.ledger import (
    FOCUS_COLUMNS,
    GROUP_BY,
    Report,
    ReportRow,
    check_group_by,
    focus_json_value,
    focus_records,
    from_micros,
    report,
    run_ids,
    to_focus_csv,
)
from stratus.redact import display_url
from stratus.state import Database, default_url, open_database, state_dir
from stratus.units import format_usd as money_text

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


@app.command("report")
def report_command(
    by: str = typer.Option(
        "step",
        "--by",
        help=f"Comma-separated grouping, any of: {', '.join(GROUP_BY)}. Example: --by team,provider",
    ),
    run: str | None = _RUN,
    all_runs: bool = _ALL_RUNS,
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object for scripts."),
    as_csv: bool = typer.Option(False, "--csv", help="Print the grouped rows as CSV (no total line)."),
    platform: Path = _PLATFORM,
    state_url: str | None = _STATE_URL,
) -> None:
    """Planned and actual cost side by side, with the on-demand list price of what actually ran.

    Example: stratus cost report --by site,step --run 20250101-120000-fraud

    actual is what was paid (spot and reserved rates included); list is the same usage at on-demand
    prices; planned comes from the plan the run started with. Exit codes: 0 shown (also when the
    ledger is empty), 2 usage or config error.
    """
    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv", param_hint="--json/--csv")
    try:
        groups = check_group_by(by.split(","))
    except ValueError as exc:
        raise ConfigError(str(exc), field="--by") from exc
    db, where = _open(platform, state_url)
    result = Report(groups, None, (), ReportRow((), 0, 0, 0))
    if db is not None:
        try:
            chosen = _choose_run(db, run, all_runs)
            if chosen is not None or all_runs:
                result = report(db, by=groups, run_id=chosen)
        finally:
            db.engine.dispose()
    if as_json:
        print_json(result.to_json())
    elif as_csv:
        typer.echo(result.to_csv(), nl=False)
    elif result.empty:
        console().print(_EMPTY.format(where=where))
    else:
        _print_report(result)


@app.command("export")
def export_command(
    run: str | None = _RUN,
    all_runs: bool = _ALL_RUNS,
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

    Money is in US dollars with six decimal places, times are ISO 8601 UTC, Tags is a JSON object.
    """
    db, _ = _open(platform, state_url)
    records: list[dict[str, Any]] = []
    if db is not None:
        try:
            chosen = _choose_run(db, run, all_runs)
            if chosen is not None or all_runs:
                records = focus_records(db, run_id=chosen, include_planned=include_planned)
        finally:
            db.engine.dispose()
    if as_json:
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


def _open(platform: Path, state_url: str | None) -> tuple[Database | None, str]:
    """The state database and how to name it; None when the default SQLite file does not exist yet.

    Never creates anything: asking what a run cost must not leave a .stratus folder behind.
    """
    if state_url is None:
        if not platform.is_file():
            raise ConfigError(
                f"no platform file at {platform}; run this in the platform's folder, "
                "or pass --platform FILE or --state-url URL",
                field="--platform",
            )
        folder = state_dir(platform)
        if not folder.is_dir():
            return None, str(folder)
        state_url = default_url(folder)
        if not Path(make_url(state_url).database or "").is_file():
            return None, str(folder)
    shown = display_url(state_url)
    try:
        make_url(state_url)
    except ArgumentError as exc:
        raise ConfigError(
            f"{shown!r} is not a database URL; expected e.g. sqlite:///path/state.db",
            field="--state-url",
        ) from exc
    try:
        return open_database(state_url), shown
    except SQLAlchemyError as exc:
        raise StratusError(f"cannot open the state database {shown}: {exc}") from exc


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


def _print_report(result: Report) -> None:
    title = f"Cost of run {result.run_id}" if result.run_id else "Cost of all runs"
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
