"""``stratus catalog``: browse offerings cheapest first (like ``sky show-gpus``) and import catalogs.

A thin shell: filtering and notes come from :mod:`stratus.catalog`; this module only parses options,
picks what to show and prints it as a table or as one JSON object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import typer
from rich.table import Table

from stratus.catalog import Catalog, Offering, import_catalog, region_info
from stratus.cli.output import console
from stratus.config.env import PLATFORM_ENV
from stratus.errors import ConfigError
from stratus.resources import parse_accelerator
from stratus.units import format_usd
from stratus.workspace import Workspace

__all__ = ["Listing", "app", "select_offerings"]

app = typer.Typer(
    help=(
        "List cloud offerings with hourly prices, cheapest first, or import a fresher price catalog. "
        "Example: stratus catalog --accelerator A100 --provider gcp"
    ),
    no_args_is_help=False,
)

_PLATFORM_HELP = (
    "Platform file whose folder holds .stratus/catalog/ (imported catalogs). "
    "Example: --platform team/stratus.yaml"
)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


@dataclass
class Listing:
    """What ``stratus catalog`` shows: the offerings (sorted, limited), how many matched, and notes."""

    offerings: list[Offering]
    matched: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """The ``--json`` object: ``{"offerings": [...], "notes": [...]}``; money as exact decimal strings."""
        return {
            "offerings": [
                {
                    "provider": o.provider,
                    "region": o.region,
                    "name": o.name,
                    "vcpus": o.vcpus,
                    "memory_gb": o.memory_gb,
                    "accelerator": None
                    if o.accelerator is None
                    else {"name": o.accelerator.name, "count": o.accelerator.count},
                    "price_per_hour_usd": _money(o.price_per_hour_usd),
                    "spot_price_per_hour_usd": _money(o.spot_price_per_hour_usd),
                    "zones": list(o.zones),
                }
                for o in self.offerings
            ],
            "notes": self.notes,
        }


def _providers(catalog: Catalog, provider: str | None) -> tuple[str, ...]:
    if provider is None:
        return catalog.providers
    name = provider.strip().lower()
    if name not in catalog.providers:
        raise ConfigError(
            f"unknown provider {provider!r}; expected one of {', '.join(catalog.providers)} "
            "(on-prem and local sites list their own offerings in the platform file)",
            field="--provider",
        )
    return (name,)


def _check_region(catalog: Catalog, providers: tuple[str, ...], region: str) -> tuple[str, ...]:
    selected = tuple(p for p in providers if region in catalog.regions(p))
    if selected:
        return selected
    notes = [
        note
        for p in providers
        if region_info(p, region) is not None or len(providers) == 1
        for note in [catalog.coverage_note(p, region)]
        if note
    ]
    hint = f" ({'; '.join(notes)})" if notes else ""
    raise ConfigError(
        f"region {region!r} has no offerings in the catalog for {', '.join(providers)}{hint}; "
        "run `stratus catalog --provider NAME --limit 0` to see the regions that do",
        field="--region",
    )


def _accelerator_filter(catalog: Catalog, text: str) -> tuple[str, int | None]:
    try:
        parsed = parse_accelerator(text)
    except ValueError as exc:
        raise ConfigError(str(exc), field="--accelerator") from exc
    known = {o.accelerator.name.lower(): o.accelerator.name for o in catalog.all() if o.accelerator}
    known.update(
        {r.accelerator.name.lower(): r.accelerator.name for r in catalog.skipped_rows() if r.accelerator}
    )
    if parsed.name.lower() not in known:
        raise ConfigError(
            f"unknown accelerator {parsed.name!r}; the catalog knows {', '.join(sorted(known.values()))}",
            field="--accelerator",
        )
    return parsed.name.lower(), (parsed.count if ":" in text else None)


def select_offerings(
    catalog: Catalog,
    *,
    provider: str | None = None,
    accelerator: str | None = None,
    region: str | None = None,
    spot: bool = False,
    limit: int = 20,
) -> Listing:
    """Filter and sort the catalog the way ``stratus catalog`` shows it; raises ConfigError on bad filters."""
    providers = _providers(catalog, provider)
    if region is not None:
        providers = _check_region(catalog, providers, region)
    wanted = _accelerator_filter(catalog, accelerator) if accelerator else None
    notes: list[str] = []

    def keep(o: Offering) -> bool:
        if wanted is not None:
            if o.accelerator is None or o.accelerator.name.lower() != wanted[0]:
                return False
            if wanted[1] is not None and o.accelerator.count != wanted[1]:
                return False
        return not spot or o.spot_price_per_hour_usd is not None

    def price(o: Offering) -> Decimal:
        return (
            o.spot_price_per_hour_usd
            if spot and o.spot_price_per_hour_usd is not None
            else o.price_per_hour_usd
        )

    chosen = [
        o
        for p in providers
        for r in ([region] if region else catalog.regions(p))
        for o in catalog.offerings(p, r)
        if keep(o)
    ]
    chosen.sort(key=lambda o: (price(o), o.provider, o.region, o.name))
    for p in providers:
        table = catalog.provider_catalog(p)
        if table is not None and not table.bundled:
            notes.append(f"{p} prices come from {table.label}")
        note = catalog.coverage_note(p, region) if provider is not None else None
        if note:
            notes.append(f"{p}: {note}")
        if wanted is not None:
            notes.extend(
                f"{p} {r.item} is not listed: {r.reason} "
                f"({len(r.regions)} region(s), {r.rows} catalog row(s))"
                for r in catalog.skipped_rows(p)
                if r.accelerator is not None
                and r.accelerator.name.lower() == wanted[0]
                and (region is None or region in r.regions)
            )
    shown = chosen if limit <= 0 else chosen[:limit]
    if len(shown) < len(chosen):
        notes.append(f"showing the {len(shown)} cheapest of {len(chosen)} offerings; --limit 0 shows all")
    return Listing(shown, len(chosen), notes)


def _print_table(listing: Listing) -> None:
    out = console()
    table = Table(
        "provider", "region", "offering", "vCPUs", "memory", "accelerator", "on-demand $/h", "spot $/h"
    )
    for o in listing.offerings:
        table.add_row(
            o.provider,
            o.region,
            o.name,
            f"{o.vcpus:g}",
            f"{o.memory_gb:g} GB",
            str(o.accelerator) if o.accelerator else "-",
            format_usd(o.price_per_hour_usd),
            "-" if o.spot_price_per_hour_usd is None else format_usd(o.spot_price_per_hour_usd),
        )
    out.print(table)
    for note in listing.notes:
        out.print(f"note: {note}", style="dim", highlight=False)


@app.callback(invoke_without_command=True)
def list_offerings(
    ctx: typer.Context,
    provider: str | None = typer.Option(None, "--provider", help="Only this cloud. Example: --provider gcp"),
    accelerator: str | None = typer.Option(
        None,
        "--accelerator",
        help="Only this device; NAME:COUNT also fixes the count. Example: --accelerator A100:8",
    ),
    region: str | None = typer.Option(
        None, "--region", help="Only this region. Example: --region europe-west4"
    ),
    spot: bool = typer.Option(
        False, "--spot", help="Only offerings with a spot price, sorted by it. Example: --spot"
    ),
    limit: int = typer.Option(
        20, "--limit", min=0, help="Show at most N rows, 0 for all. Example: --limit 0"
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object instead of a table. Example: --json"
    ),
    platform: Path = typer.Option(
        Path("stratus.yaml"), "--platform", envvar=PLATFORM_ENV, help=_PLATFORM_HELP
    ),
) -> None:
    """List offerings cheapest first, with vCPUs, memory, accelerator and on-demand/spot $/h.

    Example: stratus catalog --accelerator H100 --spot --limit 5
    """
    if ctx.invoked_subcommand is not None:
        return
    catalog = Catalog.load(Workspace(platform).catalog_dir)
    listing = select_offerings(
        catalog, provider=provider, accelerator=accelerator, region=region, spot=spot, limit=limit
    )
    if as_json:
        typer.echo(json.dumps(listing.to_json()))
    else:
        _print_table(listing)


@app.command("import")
def import_command(
    src_dir: Path = typer.Argument(
        ..., help="SkyPilot v8 catalog folder (aws/vms.csv, ...). Example: skypilot-catalog/catalogs/v8"
    ),
    platform: Path = typer.Option(
        Path("stratus.yaml"), "--platform", envvar=PLATFORM_ENV, help=_PLATFORM_HELP
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object instead of text. Example: --json"
    ),
) -> None:
    """Validate a SkyPilot v8 catalog and copy it into .stratus/catalog/ so plans use its prices.

    Example: stratus catalog import ~/skypilot-catalog/catalogs/v8 --platform stratus.yaml
    """
    if not platform.parent.is_dir():
        raise ConfigError(
            f"the folder of the platform file, {platform.parent}, does not exist; "
            "create it or pass --platform",
            field="--platform",
        )
    dest = Workspace(platform).catalog_dir
    rows = import_catalog(src_dir, dest)
    if as_json:
        typer.echo(json.dumps({"imported": rows, "destination": str(dest)}))
        return
    for provider, count in rows.items():
        typer.echo(f"imported {provider}: {count} rows -> {dest / provider / 'vms.csv'}")
