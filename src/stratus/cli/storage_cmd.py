"""``stratus storage``: what the sites hold according to the manifest, re-hashed on demand, and repaired."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Literal

import typer
from rich.markup import escape
from rich.table import Table

from stratus.cli.inputs import JSON, PLATFORM_HERE, workspace_here
from stratus.cli.output import console, print_json, stderr
from stratus.errors import ConfigError
from stratus.policy import policy_gate
from stratus.runner.replicas import ArtifactState, RepairLedger, inventory, repair_all, sweep_all, verify_all
from stratus.runner.retrieve import Found, Retrieved, fetch_artifact, find_artifact
from stratus.storage import DEFAULT_PROBE_TIMEOUT_S
from stratus.workspace import Workspace

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Artifacts and their replicas across sites. Example: stratus storage verify --site gcp-eu-west\n\n"
        "get and cat copy an artifact out (by name or hash, hash-checked, from any verified holder); "
        "ls lists the manifest (under-replicated artifacts first); verify re-reads and hashes every "
        "replica; repair writes pending replicas and re-copies missing or corrupt ones from one that "
        "verifies.\n\nExit codes of verify and repair: 0 healthy; 1 a replica is missing, corrupt or "
        "pending, or could not be repaired; 4 every replica that could be read is fine but a site did "
        "not answer (its replicas are reported unreachable and their recorded state is left as it was)."
    ),
    no_args_is_help=True,
)

_SITE = typer.Option(None, "--site", help="Only replicas at this site.")
_TIMEOUT = typer.Option(
    DEFAULT_PROBE_TIMEOUT_S,
    "--timeout",
    envvar="STRATUS_PROBE_TIMEOUT_S",
    min=0.1,
    help="Seconds a site's store gets to answer its probe before it counts as unreachable.",
)
#: Exit code of verify/repair when a site did not answer (and nothing that was read is wrong).
EXIT_UNREACHABLE = 4
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
    workspace = _open(platform, site, state_url_option)
    _show("ls", inventory(workspace.repository, site), as_json, {})


@app.command("verify")
def verify_command(
    platform: Path | None = PLATFORM_HERE,
    site: str | None = _SITE,
    state_url_option: str | None = _STATE_URL,
    as_json: bool = JSON,
    timeout_s: float = _TIMEOUT,
) -> None:
    """Re-read and hash every replica; record verified, missing or corrupt. Exit 1 if any is not verified.

    Each site is probed once first: an unreachable site's replicas are reported unreachable (exit 4).
    """
    _check("verify", platform, site, state_url_option, as_json, timeout_s)


@app.command("repair")
def repair_command(
    platform: Path | None = PLATFORM_HERE,
    site: str | None = _SITE,
    state_url_option: str | None = _STATE_URL,
    as_json: bool = JSON,
    timeout_s: float = _TIMEOUT,
) -> None:
    """Write pending replicas, re-copy missing or corrupt ones from a verified one (cheapest first).

    Each copy is recorded as a transfer in the FOCUS ledger. Exit 1 if something could not be repaired,
    4 if a site did not answer (its replicas wait for the next repair).
    """
    _check("repair", platform, site, state_url_option, as_json, timeout_s)


_ARTIFACT = typer.Argument(
    ...,
    help="A reference (train.model, dataset:raw) or a SHA-256 (a unique prefix of 8+ digits will do).",
    show_default=False,
)
_RUN = typer.Option(
    None, "--run", help="Resolve the reference in this run. Default: the latest run naming it."
)
_FROM_SITE = typer.Option(None, "--site", help="Fetch from this site only. Default: any verified holder.")


@app.command("get")
def get_command(
    artifact: str = _ARTIFACT,
    output: Path = typer.Option(
        ..., "--output", "-o", help="Where to write it (a folder for a folder artifact)."
    ),
    site: str | None = _FROM_SITE,
    run: str | None = _RUN,
    platform: Path | None = PLATFORM_HERE,
    state_url_option: str | None = _STATE_URL,
) -> None:
    """Copy an artifact out of the platform, hash-checked, from any site holding verified bytes.

    Example: stratus storage get train.model -o model.onnx
    """
    found, fetched = _retrieve(artifact, output, site, run, platform, state_url_option)
    skipped = "".join(f"; skipped {s}: {why}" for s, why in fetched.skipped.items())
    stderr().print(
        f"wrote {escape(str(output))} ({found.size_bytes:,} bytes, sha256 {found.sha256}) from site "
        f"{escape(fetched.site)}{escape(skipped)}",
        soft_wrap=True,
    )


@app.command("cat")
def cat_command(
    artifact: str = _ARTIFACT,
    site: str | None = _FROM_SITE,
    run: str | None = _RUN,
    platform: Path | None = PLATFORM_HERE,
    state_url_option: str | None = _STATE_URL,
) -> None:
    """Print an artifact's bytes on standard output, once they are hash-checked (which site: on stderr).

    Example: stratus storage cat combine.report
    """
    with tempfile.TemporaryDirectory(prefix="stratus-cat-") as folder:
        dest = Path(folder) / "artifact"
        found, fetched = _retrieve(artifact, dest, site, run, platform, state_url_option, refuse_dirs=True)
        with dest.open("rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer)
        sys.stdout.flush()
    stderr().print(
        f"{found.label}: {found.size_bytes:,} bytes from site {escape(fetched.site)}", soft_wrap=True
    )


def _retrieve(
    artifact: str,
    dest: Path,
    site: str | None,
    run: str | None,
    platform: Path | None,
    url: str | None,
    *,
    refuse_dirs: bool = False,
) -> tuple[Found, Retrieved]:
    workspace = _open(platform, site, url)
    repo, stores = workspace.repository, workspace.stores()  # each opened only if a replica needs it
    found = find_artifact(repo, artifact, run)
    if found.is_dir and refuse_dirs:
        raise ConfigError(
            f"{found.label} is a folder; copy it out with: stratus storage get {artifact} -o DIR",
            field="ARTIFACT",
        )
    if found.is_dir and dest.is_file():
        raise ConfigError(f"{found.label} is a folder, and {dest} is a file", field="--output")
    if not found.is_dir and dest.is_dir():
        raise ConfigError(
            f"{dest} is a folder; give the file to write, e.g. {dest / 'artifact'}", field="--output"
        )
    return found, fetch_artifact(repo, stores, found, dest, site=site)


def _check(
    action: Literal["verify", "repair"],
    platform: Path | None,
    site: str | None,
    url: str | None,
    as_json: bool,
    timeout_s: float,
) -> None:
    workspace = _open(platform, site, url)
    repo, stores = workspace.repository, workspace.stores()  # each opened only if a replica needs it
    down: dict[str, str] = {}
    if action == "verify":
        states = verify_all(repo, stores, site, timeout_s=timeout_s, down=down)
    else:
        model = workspace.platform
        ledger = RepairLedger.for_platform(model, workspace.catalog)
        gate = policy_gate(model, workspace.platform_file.parent)
        try:
            states = repair_all(
                repo, stores, site, timeout_s=timeout_s, ledger=ledger, down=down, policy=gate
            )
        finally:
            gate.close()
    _show(action, states, as_json, down, sweep_all(stores, site) if action == "repair" else None)
    if any(s.error or s.under_replicated for s in states):
        sys.exit(1)
    if down:
        sys.exit(EXIT_UNREACHABLE)


def _open(platform: Path | None, site: str | None, url: str | None) -> Workspace:
    """The workspace, its platform parsed and ``--site`` checked against it, before the database opens."""
    workspace = workspace_here(platform, url)
    model = workspace.platform
    if site is not None and site not in model.sites:
        raise ConfigError(f"unknown site {site!r}; the platform's sites are: {', '.join(model.sites)}")
    return workspace


def _show(
    action: str,
    states: list[ArtifactState],
    as_json: bool,
    down: dict[str, str],
    swept: dict[str, int] | None = None,
) -> None:
    healthy = sum(1 for s in states if s.healthy)
    under = sum(1 for s in states if s.under_replicated)
    if as_json:
        payload = {
            "action": action,
            "artifacts": [s.to_json() for s in states],
            "healthy": healthy,
            "unhealthy": len(states) - healthy,
            "under_replicated": under,
            "unreachable_sites": dict(sorted(down.items())),
        }
        print_json(payload if swept is None else {**payload, "swept": swept})
        return
    out = console()
    for name, why in sorted(down.items()):
        out.print(f"[yellow]site {escape(name)} is unreachable: {escape(why)}[/]", soft_wrap=True)
    if swept and sum(swept.values()):
        where = ", ".join(f"{escape(site)}: {n}" for site, n in sorted(swept.items()) if n)
        out.print(f"Removed {sum(swept.values())} staging file(s) that killed writers left ({where}).")
    if not states:
        out.print("No artifacts recorded yet: run a pipeline first (stratus run PIPELINE).")
        return
    table = Table(header_style="bold")
    for column in ("artifact", "sha256", "bytes", "residency", "replicas"):
        table.add_column(column, justify="right" if column == "bytes" else "left")
    colour = {"unreachable": "yellow", "pending": "yellow"}
    for state in states:
        replicas = ", ".join(
            f"{escape(site)}"
            if status == "verified"
            else f"[{colour.get(status, 'red')}]{escape(site)} ({status})[/]"
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
    if under:
        out.print(f"{under} under-replicated: run `stratus storage repair` once their sites answer.")
