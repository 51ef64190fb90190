"""``stratus storage``: what the sites hold according to the manifest, re-hashed on demand, and repaired."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import typer
from rich.markup import escape
from rich.table import Table

from stratus.cli.inputs import JSON, PLATFORM_HERE
from stratus.cli.output import console, print_json
from stratus.config import load_platform, resolve_platform_path
from stratus.errors import ConfigError
from stratus.runner.context import open_stores
from stratus.runner.replicas import ArtifactState, inventory, repair_all, verify_all
from stratus.state import Repository, open_database, state_url
from stratus.storage import SiteStore

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Artifacts and their replicas across sites. Example: stratus storage verify --site gcp-eu-west\n\n"
        "ls lists the manifest; verify re-reads and hashes every replica; repair re-copies missing or "
        "corrupt replicas from one that verifies. verify and repair exit 1 while anything is unhealthy."
    ),
    no_args_is_help=True,
)

_SITE = typer.Option(None, "--site", help="Only replicas at this site.")
_STATE_URL = typer.Option(
    None,
    "--state-url",
    envvar="STRATUS_STATE_URL",
    help="SQLAlchemy URL of the state database. Default: .stratus/state.db beside the platform file.",
)


@app.command("ls")
def ls_command(
    platform: Path | None = PLATFORM_HERE,
    site: str | None = _SITE,
    state_url_option: str | None = _STATE_URL,
    as_json: bool = JSON,
) -> None:
    """List artifacts and where each replica is, as last recorded (nothing is read from the stores)."""
    repo, _ = _open(platform, site, state_url_option)
    _show("ls", inventory(repo, site), as_json)


@app.command("verify")
def verify_command(
    platform: Path | None = PLATFORM_HERE,
    site: str | None = _SITE,
    state_url_option: str | None = _STATE_URL,
    as_json: bool = JSON,
) -> None:
    """Re-read and hash every replica; record verified, missing or corrupt. Exit 1 if any is not verified."""
    _check("verify", platform, site, state_url_option, as_json)


@app.command("repair")
def repair_command(
    platform: Path | None = PLATFORM_HERE,
    site: str | None = _SITE,
    state_url_option: str | None = _STATE_URL,
    as_json: bool = JSON,
) -> None:
    """Re-copy missing or corrupt replicas from a verified one. Exit 1 if something could not be repaired."""
    _check("repair", platform, site, state_url_option, as_json)


def _check(
    action: Literal["verify", "repair"],
    platform: Path | None,
    site: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    repo, stores = _open(platform, site, url)
    states = (verify_all if action == "verify" else repair_all)(repo, stores, site)
    _show(action, states, as_json)
    if not all(s.healthy for s in states):
        sys.exit(1)


def _open(
    platform: Path | None, site: str | None, url: str | None
) -> tuple[Repository, dict[str, SiteStore]]:
    platform_file = resolve_platform_path(platform)
    model = load_platform(platform_file)
    if site is not None and site not in model.sites:
        raise ConfigError(f"unknown site {site!r}; the platform's sites are: {', '.join(model.sites)}")
    stores = open_stores(model, platform_file.resolve().parent)
    return Repository(open_database(state_url(platform_file, url))), stores


def _show(action: str, states: list[ArtifactState], as_json: bool) -> None:
    healthy = sum(1 for s in states if s.healthy)
    if as_json:
        print_json(
            {
                "action": action,
                "artifacts": [s.to_json() for s in states],
                "healthy": healthy,
                "unhealthy": len(states) - healthy,
            }
        )
        return
    out = console()
    if not states:
        out.print("No artifacts recorded yet: run a pipeline first (stratus run PIPELINE).")
        return
    table = Table(header_style="bold")
    for column in ("artifact", "sha256", "bytes", "residency", "replicas"):
        table.add_column(column, justify="right" if column == "bytes" else "left")
    for state in states:
        replicas = ", ".join(
            f"{escape(site)}" if status == "verified" else f"[red]{escape(site)} ({status})[/]"
            for site, status in sorted(state.replicas.items())
        )
        if state.repaired:
            replicas += " [green](repaired: " + ", ".join(sorted(state.repaired)) + ")[/]"
        table.add_row(
            escape(", ".join(state.names) or "-"),
            state.sha256[:12],
            str(state.size_bytes),
            "/".join(sorted(state.residency)) or "-",
            replicas,
        )
    out.print(table)
    for state in states:
        if state.error:
            out.print(f"[red]{state.sha256[:12]}: {escape(state.error)}[/]", soft_wrap=True)
    summary = {"ls": "recorded", "verify": "verified on every replica", "repair": "healthy after repair"}
    out.print(f"{healthy} of {len(states)} artifacts {summary[action]}.")
