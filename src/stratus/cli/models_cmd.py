"""``stratus models``: the model registry (MLflow): list models, show a version's lineage, move an alias.

A thin shell over :mod:`stratus.registry`. The registry is the platform file's ``registry.tracking_uri``
(a team's MLflow server), else the embedded store in ``.stratus/`` beside the platform file;
``--tracking-uri`` overrides both. MLflow is imported only when one of these commands runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from stratus.cli import promote_cmd
from stratus.cli.inputs import JSON, PLATFORM_ENV, workspace_here
from stratus.cli.output import console, print_json
from stratus.registry import ModelDetails, ModelVersionInfo, Registry
from stratus.units import format_usd
from stratus.workspace import Workspace

__all__ = ["app", "ls_command", "promote_command", "show_command"]

app = typer.Typer(
    help=(
        "Registered models (MLflow): what exists, where each version came from, which is champion. "
        "Example: stratus models promote fraud --version 3 --alias champion; "
        "stratus models promote fraud --from-alias staging --to-alias production --deploy aws-us-east"
    ),
    no_args_is_help=True,
)

_PLATFORM = typer.Option(
    None,
    "--platform",
    "-p",
    envvar=PLATFORM_ENV,
    help="The platform file; its registry.tracking_uri, else the embedded store in .stratus/ beside it. "
    "Default: $STRATUS_PLATFORM, then stratus.yaml in the working directory.",
)
_TRACKING_URI = typer.Option(
    None,
    "--tracking-uri",
    help="MLflow tracking URI to use instead of the platform's. Example: --tracking-uri http://mlflow:5000",
)
_MODEL = typer.Argument(..., help="The registered model's name.", show_default=False)


@app.command("ls")
def ls_command(
    platform: Path | None = _PLATFORM, tracking_uri: str | None = _TRACKING_URI, as_json: bool = JSON
) -> None:
    """List registered models with their newest version and aliases.

    Example: stratus models ls --json
    """
    registry = _open(platform, tracking_uri)
    models = registry.list_models()
    if as_json:
        print_json({"tracking_uri": registry.shown_uri, "models": [m.to_json() for m in models]})
        return
    out = console()
    if not models:
        out.print(f"No models registered in {escape(registry.shown_uri)} yet.", soft_wrap=True)
        return
    table = Table(title=f"Models in {escape(registry.shown_uri)}", header_style="bold")
    for column in ("model", "latest", "aliases", "updated", "description"):
        table.add_column(column)
    for model in models:
        table.add_row(
            escape(model.name),
            f"v{model.latest_version}" if model.latest_version is not None else "-",
            escape(_aliases(model.aliases)) or "-",
            f"{model.updated_at:%Y-%m-%d %H:%M}",
            escape(model.description),
        )
    out.print(table)


@app.command("show")
def show_command(
    model: str = _MODEL,
    version: int | None = typer.Option(None, "--version", min=1, help="The version number to show."),
    alias: str | None = typer.Option(None, "--alias", help="The alias whose version to show."),
    platform: Path | None = _PLATFORM,
    tracking_uri: str | None = _TRACKING_URI,
    as_json: bool = JSON,
) -> None:
    """A model's versions and one version's lineage: run, step, sites, input hashes, metrics, cost.

    Example: stratus models show fraud --alias champion

    Without --version or --alias it shows the newest version and lists all of them.
    """
    if version is not None and alias is not None:
        raise typer.BadParameter("choose one of --version and --alias", param_hint="--version/--alias")
    registry = _open(platform, tracking_uri)
    details = registry.show(model, version=version, alias=alias)
    if as_json:
        print_json({"tracking_uri": registry.shown_uri, **details.to_json()})
        return
    _print_details(details, registry.shown_uri, list_versions=version is None and alias is None)


def _open(platform: Path | None, tracking_uri: str | None) -> Registry:
    """The registry to talk to: --tracking-uri, else the platform's, else the embedded store beside it.

    With --tracking-uri the platform file is optional: a team's server is usable from any folder.
    """
    if tracking_uri is not None:
        return Workspace(platform or Path("stratus.yaml")).registry(tracking_uri)
    return workspace_here(platform).registry()


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{alias} → v{number}" for alias, number in aliases.items())


def _promotion_words(record: dict[str, Any]) -> str:
    """``by alice at 2026-05-01 09:00:00 UTC, from staging, copied to aws-us-east``."""
    if "raw" in record:
        return str(record["raw"])
    words = [f"by {record.get('by') or '?'}"]
    if record.get("at"):
        words.append(f"at {str(record['at'])[:19].replace('T', ' ')} UTC")
    text = " ".join(words)
    if record.get("from"):
        text += f", from {record['from']}"
    if record.get("sites"):
        text += f", copied to {', '.join(record['sites'])}"
    return text


def _print_details(details: ModelDetails, shown_uri: str, *, list_versions: bool) -> None:
    out = console()
    model = details.model
    out.print(f"[bold]{escape(model.name)}[/] in {escape(shown_uri)}", soft_wrap=True)
    if model.description:
        out.print(escape(model.description))
    out.print(f"aliases: {escape(_aliases(model.aliases)) or 'none'}")
    chosen = details.selected
    if chosen is None:
        out.print("No versions yet.")
        return
    _print_version(chosen)
    if list_versions and len(details.versions) > 1:
        table = Table(title="Versions", header_style="bold")
        for column in ("version", "aliases", "created", "run", "step", "cost"):
            table.add_column(column, justify="right" if column == "cost" else "left")
        for info in details.versions:
            lineage = info.lineage
            table.add_row(
                f"v{info.version}",
                escape(", ".join(info.aliases)),
                f"{info.created_at:%Y-%m-%d %H:%M}",
                escape(lineage.run_id) if lineage else "-",
                escape(lineage.step) if lineage else "-",
                format_usd(lineage.cost_usd) if lineage else "-",
            )
        out.print(table)


def _print_version(info: ModelVersionInfo) -> None:
    out = console()
    aliases = f" [green]({escape(', '.join(info.aliases))})[/]" if info.aliases else ""
    facts = Table(title=f"{escape(info.uri)}{aliases}", show_header=False, box=None)
    facts.add_column(style="bold")
    facts.add_column()
    lineage = info.lineage
    rows: list[tuple[str, str]] = [("created", f"{info.created_at:%Y-%m-%d %H:%M:%S} UTC")]
    if lineage is not None:
        rows += [
            ("run", lineage.run_id),
            ("pipeline", lineage.pipeline or "-"),
            ("step", lineage.step),
            ("sites", ", ".join(lineage.sites)),
            ("residency", "/".join(lineage.residency) or "none (may be served anywhere)"),
            ("cost so far", format_usd(lineage.cost_usd)),
        ]
    if info.onnx_file:
        rows.append(("file", f"{info.onnx_file} (sha256 {(info.onnx_sha256 or '?')[:12]})"))
    if info.onnx_sites:  # where the bytes are found again if the registry's own file is lost
        rows.append(("copies at", ", ".join(info.onnx_sites)))
    for alias, record in info.promotions.items():  # who put it there, when, from where
        rows.append((f"promoted to {alias}", _promotion_words(record)))
    rows += [("source", info.source), ("status", info.status)]
    rows += [(key, value) for key, value in (lineage.tags if lineage else info.tags).items()]
    for key, value in rows:
        facts.add_row(escape(key), escape(value))
    out.print(facts)
    if lineage is None:
        out.print("Registered outside Stratus: no lineage recorded.")
        return
    if lineage.inputs:
        inputs = Table("input artifact", "sha256", header_style="bold")
        for name, digest in sorted(lineage.inputs.items()):
            inputs.add_row(escape(name), digest)
        out.print(inputs)
    if lineage.metrics:
        metrics = Table("metric", "value", header_style="bold")
        metrics.columns[1].justify = "right"
        for name, number in sorted(lineage.metrics.items()):
            metrics.add_row(escape(name), f"{number:.6g}")
        out.print(metrics)


promote_command = promote_cmd.promote_command
app.command("promote")(promote_command)
