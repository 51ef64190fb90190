"""How ``stratus run`` looks: a live line per step while it runs, then what happened and what it cost.

On a terminal the lines redraw in place (state, site, elapsed, the step's latest log line); in a pipe or
CI log each change is printed once, so the output reads as a story and stays greppable. Either way each
line a step logs is printed as it arrives, prefixed ``[step@site]``. With ``--json`` all of this goes to
stderr, so stdout holds only the JSON object.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from stratus.runner import RunEvent, RunReport, StepReport, metrics_words
from stratus.runner.sizes import size_words
from stratus.units import format_usd

__all__ = ["Progress", "log_line", "render_failure", "render_report"]

_STYLE = {
    "succeeded": "green",
    "cached": "cyan",
    "failed": "bold red",
    "preempted": "yellow",
    "retrying": "yellow",
    "cancelled": "red",
}
_ACTIVE = {"staging", "running", "publishing", "making"}


@dataclass
class _Row:
    state: str = "pending"
    site: str = ""
    started: float | None = None
    ended: float | None = None
    note: str = ""

    def elapsed(self) -> str:
        if self.started is None:
            return ""
        return f"{(self.ended or time.time()) - self.started:.1f}s"


class Progress:
    """An event sink for the runner: a live table on a terminal, one line per change elsewhere."""

    def __init__(self, console: Console, steps: list[str]) -> None:
        self.console = console
        self.rows: dict[str, _Row] = {name: _Row() for name in steps}
        self.live: Live | None = None
        if console.is_terminal:
            self.live = Live(get_renderable=self._table, console=console, refresh_per_second=4)

    def __enter__(self) -> Progress:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def __call__(self, event: RunEvent) -> None:
        """Take one runner event (called from the runner's threads, one at a time)."""
        if event.kind == "note":
            self.console.print(f"[yellow]![/] {escape(event.message)}", soft_wrap=True)
            return
        if event.kind == "run":
            self.console.print(f"[bold]{escape(event.message)}[/]", soft_wrap=True)
            return
        if event.step is None:
            return
        row = self.rows.setdefault(event.step, _Row())
        if event.kind == "log":
            row.note = event.message[-100:]
            self.console.print(escape(log_line(event)), soft_wrap=True, highlight=False, markup=True)
            return
        assert event.state is not None
        if event.state in _ACTIVE and (row.started is None or row.ended is not None):
            row.started, row.ended = event.at, None
        if event.state not in _ACTIVE:
            row.ended = event.at if row.started is not None else None
        row.state, row.site, row.note = event.state, event.site or row.site, event.message
        if self.live is None:
            self.console.print(self._line(event.step, row), soft_wrap=True, highlight=False)

    def _line(self, step: str, row: _Row) -> str:
        style = _STYLE.get(row.state, "")
        state = f"[{style}]{row.state:<10}[/]" if style else f"{row.state:<10}"
        note = f"  {escape(row.note)}" if row.note else ""
        return f"  {escape(step):<28} {state} {escape(row.site):<18} {row.elapsed():>7}{note}"

    def _table(self) -> RenderableType:
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        for column in ("step", "state", "site", "elapsed", ""):
            table.add_column(column, no_wrap=column != "")
        for step, row in self.rows.items():
            style = _STYLE.get(row.state, "")
            state = f"[{style}]{row.state}[/]" if style else row.state
            table.add_row(escape(step), state, escape(row.site), row.elapsed(), escape(row.note))
        return table


def log_line(event: RunEvent) -> str:
    """A step's log line as the run shows it: ``[train@gcp-eu-west] epoch 3 loss 0.21``.

    ``ctx.log`` writes ``[train] ...`` into the step's own log file; that prefix is replaced, not doubled.
    """
    step = event.step or "?"
    message = event.message.removeprefix(f"[{step}] ")
    where = f"{step}@{event.site}" if event.site else step
    return f"[{where}] {message}"


def render_report(console: Console, report: RunReport, resume_hint: str) -> None:
    """The summary after a run: steps, metrics, cache reuse, artifacts, cost, and how to resume."""
    table = Table(title=f"run {report.run_id}: {report.status}", title_justify="left", header_style="bold")
    for column in ("step", "status", "site", "offering", "attempts", "duration"):
        table.add_column(column, justify="right" if column in ("attempts", "duration") else "left")
    for step in report.steps:
        style = _STYLE.get(step.status, "")
        status = f"[{style}]{step.status}[/]" if style else step.status
        table.add_row(
            escape(step.step),
            status,
            escape(step.site or "-"),
            escape(step.offering or "-"),
            str(step.attempts),
            f"{step.duration_s:.1f}s",
        )
    console.print(table)
    for step in report.steps:
        if step.metrics:
            console.print(f"  {escape(step.step)}: {escape(metrics_words(step.metrics))}", soft_wrap=True)
    cached = report.cached_steps
    if cached and len(cached) == len(report.steps):
        origin = {s.cached_from for s in report.steps if s.cached_from}
        console.print(
            f"[cyan]All {len(cached)} steps reused from the cache (run {', '.join(sorted(origin))}): "
            "nothing was recomputed.[/]"
        )
    elif cached:
        console.print(
            f"[cyan]{len(cached)} of {len(report.steps)} steps reused from the cache: {', '.join(cached)}.[/]"
        )
    replicas = sum(len(a.replicas) for a in report.artifacts)
    console.print(
        f"{len(report.artifacts)} artifacts, {replicas} verified replicas; cost {format_usd(report.cost_usd)}"
        " (compute, transfers, and a month of storage of the replicas left)"
    )
    if report.size_estimates:
        console.print(
            "[yellow]Declared sizes far from what this run measured[/] (fix size_gb in the pipeline):"
        )
        for estimate in report.size_estimates:
            console.print(f"  - {escape(size_words(estimate))}", soft_wrap=True)
    if report.notes:
        console.print("[bold]What happened:[/]")
        for note in report.notes:
            console.print(f"  - {escape(note)}", soft_wrap=True)
    for down in report.sites_down:
        console.print(f"[yellow]site {escape(down.site)} was down:[/] {escape(down.reason)}", soft_wrap=True)
    for step in report.steps:
        if step.status not in ("succeeded", "cached", "pending") and (step.log_tail or step.error_class):
            render_failure(console, step)
    if report.error:
        console.print(f"[bold red]failed:[/] {escape(report.error)}", soft_wrap=True)
        console.print(f"Fix the cause, then continue with: {escape(resume_hint)}", soft_wrap=True)


def render_failure(console: Console, step: StepReport) -> None:
    """Whose failure it was, and the last lines of the step's log with where to read the rest."""
    whose = {
        "user": "an error in the step's code",
        "infrastructure": "an infrastructure failure",
    }.get(step.error_class or "", "a failure")
    console.print(
        f"[bold red]{escape(step.step)}[/] failed at {escape(step.site or '-')}: {whose} "
        f"after {step.attempts} attempt(s)",
        soft_wrap=True,
    )
    if step.log_tail:
        console.print(f"  last {len(step.log_tail)} lines of {escape(step.log_path or '')}:", soft_wrap=True)
        for line in step.log_tail:
            console.print(f"  | {escape(line)}", soft_wrap=True, highlight=False)
    elif step.log_path:
        console.print(f"  log: {escape(step.log_path)} (empty)", soft_wrap=True)
