"""The price catalog: offerings per provider and region, plus the egress table.

The bundled SkyPilot v8 files ship inside the package (read with importlib.resources, never from the
source tree), and a team can replace one provider's file with a fuller catalog imported into
``.stratus/catalog/`` beside its platform file. Parsing uses the csv module only, so loading the
bundled catalog takes a few tens of milliseconds.
"""

from __future__ import annotations

import functools
import io
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TextIO

from stratus.catalog.assemble import SkipLog, build_offerings
from stratus.catalog.egress import EgressTable
from stratus.catalog.gcp_pairing import build_gcp_offerings
from stratus.catalog.offerings import Offering, SkippedRow
from stratus.catalog.reader import read_vm_rows
from stratus.catalog.storage import StorageTable
from stratus.errors import CatalogError
from stratus.limits import MAX_CATALOG_FILE_BYTES
from stratus.userfile import read_user_file

__all__ = [
    "COVERAGE_NOTES",
    "PROVIDERS",
    "Catalog",
    "ProviderCatalog",
    "open_catalog_file",
    "parse_provider_catalog",
]

PROVIDERS = ("aws", "azure", "gcp")

COVERAGE_NOTES: Mapping[str, str] = {
    "azure": (
        "the bundled Azure catalog covers US regions only (centralus, eastus, eastus2, northcentralus, "
        "southcentralus, westcentralus, westus, westus2, westus3), so Azure cannot meet EU or Asia "
        "residency from it; import a fuller SkyPilot catalog with `stratus catalog import DIR`"
    ),
}


@dataclass(frozen=True)
class ProviderCatalog:
    """One provider's offerings by region (cheapest first), what was skipped, and where it came from."""

    provider: str
    by_region: Mapping[str, tuple[Offering, ...]]
    skipped: tuple[SkippedRow, ...]
    rows: int
    label: str
    bundled: bool


def _sort_key(offering: Offering) -> tuple[object, ...]:
    return (offering.price_per_hour_usd, offering.name)


def parse_provider_catalog(
    provider: str, stream: TextIO, label: str, *, bundled: bool = False
) -> ProviderCatalog:
    """Read one provider's v8 ``vms.csv`` into offerings; raises CatalogError on malformed input."""
    if provider not in PROVIDERS:
        raise CatalogError(
            f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}", file=label
        )
    rows = read_vm_rows(stream, label)
    skips = SkipLog(provider)
    offerings = (
        build_gcp_offerings(rows, skips) if provider == "gcp" else build_offerings(provider, rows, skips)
    )
    by_region: dict[str, list[Offering]] = defaultdict(list)
    for offering in offerings:
        by_region[offering.region].append(offering)
    return ProviderCatalog(
        provider=provider,
        by_region={
            region: tuple(sorted(items, key=_sort_key)) for region, items in sorted(by_region.items())
        },
        skipped=skips.records(),
        rows=len(rows),
        label=label,
        bundled=bundled,
    )


def _data(name: str) -> Traversable:
    return resources.files("stratus.catalog").joinpath("data", name)


@functools.cache
def _bundled_provider(provider: str) -> ProviderCatalog:
    with io.TextIOWrapper(_data(f"{provider}_vms.csv").open("rb"), encoding="utf-8", newline="") as stream:
        return parse_provider_catalog(provider, stream, f"<bundled>/{provider}_vms.csv", bundled=True)


@functools.cache
def _bundled_egress() -> EgressTable:
    with io.TextIOWrapper(_data("egress.csv").open("rb"), encoding="utf-8", newline="") as stream:
        return EgressTable.read(stream, "<bundled>/egress.csv")


@functools.cache
def _bundled_storage() -> StorageTable:
    with io.TextIOWrapper(_data("storage.csv").open("rb"), encoding="utf-8", newline="") as stream:
        return StorageTable.read(stream, "<bundled>/storage.csv")


def open_catalog_file(path: Path) -> TextIO:
    """A user's catalog CSV as text: a regular file of at most MAX_CATALOG_FILE_BYTES, in UTF-8."""
    raw = read_user_file(path, limit=MAX_CATALOG_FILE_BYTES, error=CatalogError)
    try:
        return io.StringIO(raw.decode("utf-8"), newline="")
    except UnicodeDecodeError as exc:
        raise CatalogError(f"not UTF-8 text: {exc}", file=str(path)) from None


def _read_file(path: Path, provider: str | None = None) -> ProviderCatalog | EgressTable:
    stream = open_catalog_file(path)
    if provider is None:
        return EgressTable.read(stream, str(path))
    return parse_provider_catalog(provider, stream, str(path))


class Catalog:
    """Offerings, egress and storage prices for every provider; frozen after construction."""

    def __init__(
        self,
        providers: Mapping[str, ProviderCatalog],
        egress: EgressTable,
        storage: StorageTable | None = None,
    ) -> None:
        self._providers = dict(sorted(providers.items()))
        self.egress = egress
        self.storage = storage if storage is not None else _bundled_storage()

    @classmethod
    def bundled(cls) -> Catalog:
        """The catalog shipped with Stratus (cached: parsed once per process)."""
        return _bundled_catalog()

    @classmethod
    def load(cls, user_dir: Path | None = None) -> Catalog:
        """The bundled catalog, with each provider whose ``user_dir/<provider>/vms.csv`` exists replaced.

        ``user_dir`` uses SkyPilot's layout (what ``stratus catalog import`` writes); an
        ``egress.csv`` there, in our format, replaces the bundled egress table, and a ``storage.csv``
        the bundled storage prices.
        """
        if user_dir is None or not user_dir.is_dir():
            return cls.bundled()
        providers: dict[str, ProviderCatalog] = {}
        for provider in PROVIDERS:
            path = user_dir / provider / "vms.csv"
            loaded = _read_file(path, provider) if path.is_file() else _bundled_provider(provider)
            assert isinstance(loaded, ProviderCatalog)
            providers[provider] = loaded
        egress_path = user_dir / "egress.csv"
        egress = _read_file(egress_path) if egress_path.is_file() else _bundled_egress()
        assert isinstance(egress, EgressTable)
        storage_path = user_dir / "storage.csv"
        storage = (
            StorageTable.read(open_catalog_file(storage_path), str(storage_path))
            if storage_path.is_file()
            else _bundled_storage()
        )
        return cls(providers, egress, storage)

    @property
    def providers(self) -> tuple[str, ...]:
        """Providers with a catalog, sorted."""
        return tuple(self._providers)

    def provider_catalog(self, provider: str) -> ProviderCatalog | None:
        """Everything known about one provider (source file, skipped rows), or None."""
        return self._providers.get(provider)

    def offerings(self, provider: str, region: str) -> tuple[Offering, ...]:
        """Offerings of ``provider`` in ``region``, cheapest on-demand first; empty when none."""
        table = self._providers.get(provider)
        return table.by_region.get(region, ()) if table else ()

    def regions(self, provider: str) -> tuple[str, ...]:
        """Regions where ``provider`` has at least one offering, sorted."""
        table = self._providers.get(provider)
        return tuple(table.by_region) if table else ()

    def all(self) -> tuple[Offering, ...]:
        """Every offering, by provider then region then price."""
        return tuple(
            offering
            for table in self._providers.values()
            for offerings in table.by_region.values()
            for offering in offerings
        )

    def skipped_rows(self, provider: str | None = None) -> tuple[SkippedRow, ...]:
        """Catalog rows that did not become offerings, and why (all providers when ``provider`` is None)."""
        return tuple(
            record
            for name, table in self._providers.items()
            if provider is None or name == provider
            for record in table.skipped
        )

    def coverage_note(self, provider: str, region: str | None = None) -> str | None:
        """A warning about a bundled provider's known gaps, when ``region`` is None or not covered.

        Only bundled data carries the note: an imported catalog is as complete as its author made it.
        """
        table = self._providers.get(provider)
        note = COVERAGE_NOTES.get(provider)
        if table is None or note is None or not table.bundled:
            return None
        return note if region is None or region not in table.by_region else None


@functools.cache
def _bundled_catalog() -> Catalog:
    return Catalog(
        {provider: _bundled_provider(provider) for provider in PROVIDERS},
        _bundled_egress(),
        _bundled_storage(),
    )
