"""``stratus chaos``: disaster-recovery drills against a running local deployment and the sandbox."""

from __future__ import annotations

import signal
from pathlib import Path

import typer
from rich.table import Table

from stratus.cli.inputs import DEPLOYMENT, JSON, PLATFORM_HERE, finite_flag, workspace_here
from stratus.cli.output import console, print_json
from stratus.limits import MAX_CLIENT_THREADS, MAX_FLAG_SECONDS
from stratus.serving.chaos import SCOPES, DrillResult, kill_site
from stratus.serving.chaos_net import network_drill
from stratus.serving.deployments import choose_deployment
from stratus.workspace import Workspace

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Drills that break a running deployment on purpose and measure how it heals.\n\n"
        "  stratus chaos kill-site gcp-eu-west                 SIGKILL the site's server under load\n\n"
        "  stratus chaos kill-site gcp-eu-west --signal TERM   a graceful drain instead\n\n"
        "  stratus chaos kill-site aws-us-east --scope storage --for 10   its object store, 10 s\n\n"
        "  stratus chaos kill-site aws-us-east --scope site --for 10      store, server (and --gateway)\n\n"
        "  stratus chaos partition gcp-eu-west --for 5         a namespaced copy, cut off for 5 s (root)\n\n"
        "  stratus chaos delay gcp-eu-west --ms 200 --for 5    the same, 200 ms slower each way (root)\n\n"
        "Needs a deployment started with `stratus serve` (its supervisor restarts the site); the storage "
        "scopes need a sandbox site (`stratus sandbox up`)."
    ),
    no_args_is_help=True,
)


def _folder(workspace: Workspace, name: str | None) -> Path:
    """The chosen deployment's folder; the serving folder itself (no record) when none runs."""
    root = workspace.serve_dir
    chosen = choose_deployment(root, name)
    return chosen.folder if chosen is not None else root


def _secs(value: float | None) -> str:
    return "did not happen" if value is None else f"{value:.3f} s"


def show_result(result: DrillResult, label: str) -> None:
    """The drill's report as a table: load, what was killed, each phase's time, the verdict."""
    table = Table("measure", "value")
    table.add_row("drill", label)
    table.add_row("requests through the gateways", str(result.requests))
    expected = "0 expected" if result.expect_no_failures else "expected: no front door left"
    table.add_row("client-visible failures", f"{result.failures} ({expected})")
    table.add_row("  while down / after", f"{result.failures_while_down} / {result.failures_after}")
    if result.retried_on_another_gateway:
        table.add_row("retried on another gateway", str(result.retried_on_another_gateway))
    for killed in result.killed:
        what = f"{result.signal} of the link to" if killed["role"] == "link" else f"killed {killed['role']}"
        table.add_row(what, f"{killed['name']} (pid {killed['pid']}, {killed['url']})")
    network = result.scope in ("partition", "delay")
    if result.server_killed or network:
        table.add_row("fault → ejected by the gateway", _secs(result.ejected_after_s))
    if result.server_killed:
        table.add_row("kill → server ready again", _secs(result.restarted_after_s))
        table.add_row("ready → back in rotation", _secs(result.back_in_rotation_after_s))
    if (result.server_killed and result.down_for_s > 0) or network:
        table.add_row("end of window → back in rotation", _secs(result.back_after_window_s))
    if result.probe_during_ms is not None:
        table.add_row("a health check to the site while slowed", f"{result.probe_during_ms:.1f} ms")
    for name, seconds in result.gateways_back_after_s.items():
        table.add_row(f"end of window → {name} ready", _secs(seconds))
    store = result.store
    if store is not None:
        table.add_row("store refused connections while down", "yes" if store.refused_while_down else "NO")
        table.add_row("end of window → store takes writes", _secs(store.back_after_s))
        after = "?" if store.objects_after is None else str(store.objects_after)
        verdict = "intact" if store.intact else "CHANGED"
        table.add_row("objects before → after", f"{store.objects_before} → {after} ({verdict})")
    out = console()
    out.print(table)
    for note in result.notes:
        out.print(f"  note: {note}")
    for sample in result.failure_samples:
        out.print(f"  failure: {sample}")
    out.print("[green]passed[/]" if result.passed else "[red]failed[/]")


@app.command("kill-site")
def kill_site_command(
    site: str = typer.Argument(..., help="The site to take down.", show_default=False),
    scope: str = typer.Option(
        "server",
        "--scope",
        help="server: its model server. storage: its object store's server (sandbox sites). "
        "site: both at once, and the gateways named with --gateway.",
    ),
    down_for: float = typer.Option(
        0.0,
        "--for",
        min=0.0,
        help="Seconds to keep it down (the supervisor holds off restarting it), then bring it back. "
        "0: the supervisor restarts the server at once.",
    ),
    gateway: list[str] = typer.Option(
        [], "--gateway", help="With --scope site: a gateway (e.g. gateway-2) to take down as the site's."
    ),
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
    name: str | None = DEPLOYMENT,
    platform: Path | None = PLATFORM_HERE,
    as_json: bool = JSON,
) -> None:
    """Take SITE down under steady load through the gateways; count client failures and time recovery.

    Exit 0 when clients saw no failure (where none was expected) and everything taken down was seen
    down and came back (the store with the same objects); 1 otherwise; 2 for what cannot be drilled.
    """
    signals = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM}
    chosen = signals.get(signal_name.upper().removeprefix("SIG"))
    if chosen is None:
        raise typer.BadParameter(f"{signal_name!r}: expected KILL or TERM", param_hint="--signal")
    if scope not in SCOPES:
        raise typer.BadParameter(f"{scope!r}: expected one of {', '.join(SCOPES)}", param_hint="--scope")
    workspace = workspace_here(platform)
    result = kill_site(
        _folder(workspace, name),
        site,
        scope=scope,
        platform_file=workspace.platform_file,
        sig=chosen,
        down_for_s=down_for,
        gateways=gateway,
        concurrency=concurrency,
        timeout_s=timeout_s,
    )
    if as_json:
        print_json(result.to_json())
    else:
        window = f", down {down_for:g} s" if down_for else ""
        show_result(
            result, f"kill-site {site} --scope {scope} (SIG{chosen.name.removeprefix('SIG')}{window})"
        )
    if not result.passed:
        raise typer.Exit(1)


_NAMESPACED = (
    " Runs on its own copy of the deployment (each site's server in a network namespace of its own, "
    "behind a switch that can cut or delay one site's link; a gateway and the load in a client "
    "namespace), because processes already running on loopback cannot be cut off one by one; the "
    "running deployment is not touched. Needs root (network namespaces and TAP devices)."
)


def _network(site: str, mode: str, down_for: float, delay_ms: float, concurrency: int, timeout_s: float,
             name: str | None, platform: Path | None, as_json: bool) -> None:  # fmt: skip
    result = network_drill(
        _folder(workspace_here(platform), name),
        site,
        mode=mode,
        down_for_s=down_for,
        delay_ms=delay_ms,
        concurrency=concurrency,
        timeout_s=timeout_s,
    )
    if as_json:
        print_json(result.to_json())
    else:
        show_result(result, f"{mode} {site} ({result.signal}, {down_for:g} s)")
    if not result.passed:
        raise typer.Exit(1)


_FOR = typer.Option(5.0, "--for", min=0.0, help="Seconds the link stays broken before it is healed.")
_CONCURRENCY = typer.Option(4, "--concurrency", min=1, help="Client threads sending load.")
_TIMEOUT = typer.Option(60.0, "--timeout", help="Seconds to wait for each phase.")


@app.command("partition", help="Cut SITE off the network under load, then heal it." + _NAMESPACED)
def partition_command(
    site: str = typer.Argument(..., help="The site to cut off.", show_default=False),
    down_for: float = _FOR,
    concurrency: int = _CONCURRENCY,
    timeout_s: float = _TIMEOUT,
    name: str | None = DEPLOYMENT,
    platform: Path | None = PLATFORM_HERE,
    as_json: bool = JSON,
) -> None:
    """Exit 0 when clients saw no failure and the site was ejected and taken back after the window."""
    _network(site, "partition", down_for, 0.0, concurrency, timeout_s, name, platform, as_json)


@app.command("delay", help="Slow SITE's link by --ms each way under load, then restore it." + _NAMESPACED)
def delay_command(
    site: str = typer.Argument(..., help="The site whose link to slow.", show_default=False),
    delay_ms: float = typer.Option(..., "--ms", help="Extra one-way delay in milliseconds, e.g. 200."),
    down_for: float = _FOR,
    concurrency: int = _CONCURRENCY,
    timeout_s: float = _TIMEOUT,
    name: str | None = DEPLOYMENT,
    platform: Path | None = PLATFORM_HERE,
    as_json: bool = JSON,
) -> None:
    """Exit 0 when clients saw no failure."""
    _network(site, "delay", down_for, delay_ms, concurrency, timeout_s, name, platform, as_json)
