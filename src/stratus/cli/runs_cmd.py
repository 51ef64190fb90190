"""``stratus runs``: what ran, where, what it cost, its logs, and stopping a run.

A thin shell over :mod:`stratus.runs_view`, which does the queries; this module only finds the state
database and formats. It imports no SQLAlchemy on the way to listing runs from the default SQLite file, so
``stratus runs ls`` answers at once (``cancel`` writes, and loads the state layer when it does).
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from stratus.cli.inputs import JSON, PLATFORM_HERE, workspace_here
from stratus.cli.output import console, print_json
from stratus.errors import ConfigError, StratusError
from stratus.ledger.money import format_usd, from_micros
from stratus.redact import display_url
from stratus.runs_view import RunDetail, RunSummary, RunsView, follow_logs, open_view
from stratus.state.location import STATE_URL_ENV

__all__ = ["app"]

app = typer.Typer(
    help="What ran where: runs with their status, cost and sites; one run's steps, transfers and re-plans; "
    "step logs; cancelling a run. Example: stratus runs show RUN_ID",
    no_args_is_help=True,
)

_RUN = typer.Argument(..., help="The run's id, as `stratus runs ls` prints it.", show_default=False)
_STATE_URL = typer.Option(
    None,
    "--state-url",
    envvar=STATE_URL_ENV,
    help="SQLAlchemy URL of the state database. Default: .stratus/state.db beside the platform file.",
)
#: How long ``runs cancel`` waits by default for the runner to stop the run's steps.
CANCEL_WAIT_S = 60.0


@contextmanager
def _view(platform: Path | None, state_url: str | None) -> Iterator[RunsView | None]:
    """The state database's view; None when the default SQLite file does not exist (no run yet)."""
    if state_url is None:
        state_url = f"sqlite:///{workspace_here(platform).state_file}"
    view = open_view(state_url)
    try:
        yield view
    finally:
        if view is not None:
            view.close()


def _no_runs(platform: Path | None, state_url: str | None) -> str:
    where = display_url(state_url) if state_url else f"beside {workspace_here(platform).platform_file}"
    return f"no runs yet {'in ' if state_url else ''}{where}; start one with: stratus run PIPELINE"


@app.command("ls")
def ls_command(
    limit: int = typer.Option(50, "--limit", min=1, help="Show at most this many runs, latest first."),
    platform: Path | None = PLATFORM_HERE,
    state_url: str | None = _STATE_URL,
    as_json: bool = JSON,
) -> None:
    """Runs, latest first: status, start, duration, planned and actual cost (USD), sites.

    Example: stratus runs ls --json
    """
    with _view(platform, state_url) as view:
        runs = [] if view is None else view.runs(limit)
    if as_json:
        print_json({"runs": [_summary_json(r) for r in runs]})
        return
    if not runs:
        console().print(_no_runs(platform, state_url))
        return
    table = Table("run", "pipeline", "status", "started (UTC)", "duration", "planned", "actual", "sites")
    for column in table.columns[5:7]:
        column.justify = "right"
    for r in runs:
        table.add_row(
            r.id,
            escape(r.pipeline),
            _status(r.status),
            _when(r.started),
            _duration(r.duration_s),
            format_usd(r.planned_micro_usd),
            format_usd(r.actual_micro_usd),
            escape(", ".join(r.sites)),
        )
    console().print(table)


@app.command("show")
def show_command(
    run: str = _RUN,
    platform: Path | None = PLATFORM_HERE,
    state_url: str | None = _STATE_URL,
    as_json: bool = JSON,
) -> None:
    """One run: each step with its site, offering, attempts, duration and metrics; transfers; re-plans.

    Example: stratus runs show 20261126-114500-3fa9c1
    """
    with _view(platform, state_url) as view:
        if view is None:
            raise ConfigError(_no_runs(platform, state_url), field="RUN")
        detail = view.detail(run)
    if as_json:
        print_json(_detail_json(detail))
    else:
        _print_detail(detail)


@app.command("logs")
def logs_command(
    run: str = _RUN,
    step: str | None = typer.Argument(None, help="Only this step's attempts. Default: every step."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until the run ends."),
    platform: Path | None = PLATFORM_HERE,
    state_url: str | None = _STATE_URL,
) -> None:
    """The step logs of a run (what steps printed and ctx.log wrote), each attempt under a header.

    Example: stratus runs logs RUN_ID train --follow
    """
    with _view(platform, state_url) as view:
        if view is None:
            raise ConfigError(_no_runs(platform, state_url), field="RUN")
        view.run(run)  # an unknown run is an error even when it has no logs
        current = None
        for chunk in follow_logs(view, run, step, follow=follow):
            key = (chunk.log.step, chunk.log.attempt)
            if key != current:
                current = key
                header = f"== {chunk.log.step} · attempt {chunk.log.attempt} at {chunk.log.site} =="
                typer.echo(header)
            typer.echo("\n".join(chunk.lines))
            sys.stdout.flush()


@app.command("cancel")
def cancel_command(
    run: str = _RUN,
    wait: float = typer.Option(
        CANCEL_WAIT_S,
        "--wait",
        min=0,
        max=3600,
        help="Seconds to wait for the runner to stop the run's steps; 0 returns once asked.",
    ),
    platform: Path | None = PLATFORM_HERE,
    state_url: str | None = _STATE_URL,
) -> None:
    """Stop a running run: its steps are stopped, and it is marked cancelled.

    Its running steps are stopped by their executors and nothing new starts; resume it later with
    stratus run PIPELINE --resume RUN.

    The runner sees the request within a second once its steps run (a dataset being made finishes first),
    from any host that shares the state database. A run
    whose runner is gone is marked cancelled at once. Exit codes: 0 cancelled (or had already ended),
    1 the runner did not stop it within --wait, 2 unknown run.
    """
    from stratus.cli.audit_cmd import actor
    from stratus.runner.runlock import runner_alive

    with _view(platform, state_url) as view:
        if view is None:
            raise ConfigError(_no_runs(platform, state_url), field="RUN")
        summary = view.run(run)
        if summary.status != "running":
            console().print(f"run {run} has already ended ({summary.status}); nothing to cancel")
            return
        repo = workspace_here(platform, state_url).repository
        reason = f"cancelled by {actor()}"
        here = summary.runner is not None and summary.runner.split(":")[0] == socket.gethostname()
        if here and not runner_alive(summary.runner):
            repo.cancel_orphan(run, f"{reason} (its runner {summary.runner} was gone)")
            console().print(f"run {run} cancelled (its runner {summary.runner} was gone)")
            return
        repo.request_cancel(run, reason)
        console().print(f"asked runner {summary.runner} to cancel run {run}")
        deadline = time.monotonic() + wait
        while wait and time.monotonic() < deadline:
            status = view.run(run).status
            if status != "running":
                console().print(f"run {run} {status}")
                return
            time.sleep(0.5)
    if wait:
        raise StratusError(
            f"run {run} is still running {wait:g} s after the cancel request; its runner "
            f"{summary.runner} may be busy staging data: check with stratus runs show {run}"
        )


def _print_detail(detail: RunDetail) -> None:
    from stratus.runner.events import metrics_words

    out = console()
    r = detail.run
    out.print(
        f"[bold]run {r.id}[/] · {escape(r.pipeline)} · {_status(r.status)} · "
        f"started {_when(r.started)} UTC · {_duration(r.duration_s)} · "
        f"planned ${format_usd(r.planned_micro_usd)} · actual ${format_usd(r.actual_micro_usd)}",
        soft_wrap=True,
    )
    if r.error:
        out.print(f"[red]error:[/] {escape(r.error)}", soft_wrap=True)
    steps = Table("step", "status", "site", "offering", "attempts", "duration", "metrics", title="steps")
    for s in detail.steps:
        tries = " → ".join(f"{a.attempt}:{a.status}@{a.site}" for a in s.attempts)
        steps.add_row(
            escape(s.name),
            _status(s.status),
            escape(s.site),
            escape(s.offering),
            escape(tries),
            "" if s.duration_s is None else _duration(s.duration_s),
            escape(metrics_words(s.metrics, limit=6)),
        )
    out.print(steps)
    if detail.transfers:
        moved = Table("artifact", "from", "to", "bytes", "reason", title="transfers")
        moved.columns[3].justify = "right"
        for t in detail.transfers:
            moved.add_row(escape(t.artifact), t.from_site, t.to_site, f"{t.bytes:,}", escape(t.reason))
        out.print(moved)
    else:
        out.print("transfers: none (every step read its inputs where they were)")
    if detail.replans:
        replans = Table("step", "planned at", "ran at", "why", title="re-plans")
        for p in detail.replans:
            replans.add_row(escape(p.step), p.from_site, p.to_site, escape(p.why))
        out.print(replans)
    else:
        out.print("re-plans: none (every step ran where it was first planned)")


def _summary_json(r: RunSummary) -> dict[str, Any]:
    return {
        "id": r.id,
        "pipeline": r.pipeline,
        "status": r.status,
        "started": r.started.isoformat(),
        "finished": r.finished.isoformat() if r.finished else None,
        "duration_s": round(r.duration_s, 3),
        "planned_usd": float(from_micros(r.planned_micro_usd)),
        "actual_usd": float(from_micros(r.actual_micro_usd)),
        "sites": list(r.sites),
        "error": r.error,
    }


def _detail_json(detail: RunDetail) -> dict[str, Any]:
    return {
        "run": _summary_json(detail.run),
        "steps": [_plain(asdict(s)) for s in detail.steps],
        "transfers": [_plain(asdict(t)) for t in detail.transfers],
        "replans": [_plain(asdict(p)) for p in detail.replans],
    }


def _plain(value: Any) -> Any:
    """Dataclass fields as JSON: times in ISO 8601, paths as text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


_COLOURS = {"succeeded": "green", "cached": "green", "running": "cyan", "cancelled": "yellow"}


def _status(status: str) -> str:
    return f"[{_COLOURS.get(status, 'red')}]{status}[/]"


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
