"""``stratus chaos``: disaster-recovery drills against a running local deployment."""

from __future__ import annotations

import signal
from pathlib import Path

import typer
from rich.table import Table

from stratus.cli.inputs import JSON, PLATFORM_HERE, finite_flag
from stratus.cli.output import console, print_json
from stratus.cli.serve_cmd import serving_folder
from stratus.config import resolve_platform_path
from stratus.limits import MAX_CLIENT_THREADS, MAX_FLAG_SECONDS
from stratus.serving.chaos import kill_site

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Drills that break a running deployment on purpose and measure how it heals.\n\n"
        "  stratus chaos kill-site gcp-eu-west              SIGKILL the site's server under load\n\n"
        "  stratus chaos kill-site gcp-eu-west --signal TERM   a graceful drain instead\n\n"
        "Needs a deployment started with `stratus serve` (its supervisor restarts the site)."
    ),
    no_args_is_help=True,
)


@app.command("kill-site")
def kill_site_command(
    site: str = typer.Argument(..., help="The site whose model server to kill.", show_default=False),
    signal_name: str = typer.Option("KILL", "--signal", help="KILL (a crash) or TERM (a graceful drain)."),
    concurrency: int = typer.Option(
        4, "--concurrency", min=1, max=MAX_CLIENT_THREADS, help="Client threads sending load."
    ),
    timeout_s: float = typer.Option(
        60.0,
        "--timeout",
        min=0.1,
        max=MAX_FLAG_SECONDS,
        callback=finite_flag,
        help="Seconds to wait for each phase.",
    ),
    platform: Path | None = PLATFORM_HERE,
    as_json: bool = JSON,
) -> None:
    """Kill SITE's server under steady load through the gateway; count client failures and time recovery.

    Exit 0 when clients saw no failure and the site was ejected, restarted and taken back; else 1.
    """
    signals = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM}
    chosen = signals.get(signal_name.upper().removeprefix("SIG"))
    if chosen is None:
        raise typer.BadParameter(f"{signal_name!r}: expected KILL or TERM", param_hint="--signal")
    folder = serving_folder(resolve_platform_path(platform))
    result = kill_site(folder, site, sig=chosen, concurrency=concurrency, timeout_s=timeout_s)
    if as_json:
        print_json(result.to_json())
    else:
        table = Table("measure", "value")
        table.add_row("signal", f"SIG{chosen.name.removeprefix('SIG')}")
        table.add_row("requests through the gateway", str(result.requests))
        table.add_row("client-visible failures", str(result.failures))
        for label, value in (
            ("kill → ejected by the gateway", result.ejected_after_s),
            ("kill → server ready again", result.restarted_after_s),
            ("ready → back in rotation", result.back_in_rotation_after_s),
        ):
            table.add_row(label, "did not happen" if value is None else f"{value:.3f} s")
        out = console()
        out.print(table)
        for sample in result.failure_samples:
            out.print(f"  failure: {sample}")
        out.print("[green]passed[/]" if result.passed else "[red]failed[/]")
    if not result.passed:
        raise typer.Exit(1)
