"""Per-GB data-transfer prices between two places, from the bundled ``egress.csv``.

Clouds bill the SENDER: moving a GB out of a region costs the source provider's rate, which depends on
where the source is (AWS and Azure by source region/continent) and sometimes where the data goes (GCP to
Australia). First-tier rates only; volume discounts are not modelled (see data/SOURCES.md).

Rule order, most specific first: a row restricted to the destination region, then to the source region,
then the exact destination continent, then ``other`` (any other continent than the source's), then
``any``; ties go to the row whose ``from_continent`` is exact. Sites the team owns (``onprem``, ``local``)
pay no per-GB egress: the owner's link is a sunk cost. Negotiated rates belong in the platform file.

A row's ``usd_per_gb`` is in the provider's own billing unit (:func:`stratus.catalog.data_unit`): per
GiB for gcp, as Google lists it, per GB for the others. :meth:`EgressTable.rate_usd_per_gb` converts to
decimal GB, Stratus's one unit; :meth:`EgressTable.listed_rate` gives the figure as the provider lists it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TextIO

from stratus.catalog.billing import data_unit
from stratus.catalog.regions import CONTINENTS
from stratus.errors import CatalogError
from stratus.limits import MAX_PRICE_USD
from stratus.units import DataUnit, per_gb_rate

__all__ = ["OWNED_PROVIDERS", "EgressRule", "EgressTable", "Location"]

OWNED_PROVIDERS = frozenset({"onprem", "local"})
_SCOPES = ("internet", "inter_region", "inter_zone")
_COLUMNS = (
    "provider",
    "scope",
    "from_continent",
    "to_continent",
    "source_regions",
    "dest_regions",
    "usd_per_gb",
    "note",
    "source",
)
_OVERRIDE_HINT = (
    "add an `egress:` entry to the platform file (from: <site or provider>, to: <site, provider or "
    "internet>, usd_per_gb: ...), or a row to .stratus/catalog/egress.csv"
)


@dataclass(frozen=True)
class Location:
    """Where bytes sit: provider (aws, gcp, azure, onprem, local), region, and its continent."""

    provider: str
    region: str
    continent: str


@dataclass(frozen=True)
class EgressRule:
    """One row of the egress table: a first-tier USD/GB price and where it applies."""

    provider: str
    scope: str
    from_continent: str
    to_continent: str
    source_regions: frozenset[str]
    dest_regions: frozenset[str]
    usd_per_gb: Decimal
    note: str
    source: str

    def matches(self, src: Location, dst: Location) -> bool:
        """Whether this row prices a transfer from ``src`` to ``dst`` (scope is checked by the caller)."""
        if self.from_continent not in ("any", src.continent):
            return False
        if self.source_regions and src.region not in self.source_regions:
            return False
        if self.dest_regions and dst.region not in self.dest_regions:
            return False
        if self.to_continent == "other":
            return dst.continent != src.continent
        return self.to_continent in ("any", dst.continent)

    def specificity(self) -> tuple[bool, bool, int, bool]:
        """Sort key: the most specific matching row wins (see the module docstring)."""
        to_rank = {"any": 0, "other": 1}.get(self.to_continent, 2)
        return (bool(self.dest_regions), bool(self.source_regions), to_rank, self.from_continent != "any")

    def describe(self) -> str:
        """The row in words, for ``--explain``."""
        where = f"from {self.from_continent} to {self.to_continent}"
        if self.source_regions:
            where += f" (source {' '.join(sorted(self.source_regions))})"
        if self.dest_regions:
            where += f" (destination {' '.join(sorted(self.dest_regions))})"
        return f"{self.provider} {self.scope} {where}: {self.usd_per_gb} USD/GB ({self.note}; {self.source})"


def _parse_rule(row: dict[str, str], label: str, line: int, header: list[str]) -> EgressRule:
    def fail(column: str, message: str) -> CatalogError:
        return CatalogError(message, file=label, line=line, column=header.index(column) + 1, field=column)

    scope = row["scope"].strip()
    if scope not in _SCOPES:
        raise fail("scope", f"unknown scope {scope!r}; expected one of {', '.join(_SCOPES)}")
    from_c, to_c = row["from_continent"].strip(), row["to_continent"].strip()
    if from_c not in (*CONTINENTS, "any"):
        raise fail("from_continent", f"unknown continent {from_c!r}; expected any or {', '.join(CONTINENTS)}")
    if to_c not in (*CONTINENTS, "any", "other"):
        raise fail(
            "to_continent", f"unknown continent {to_c!r}; expected any, other or {', '.join(CONTINENTS)}"
        )
    try:
        usd = Decimal(row["usd_per_gb"].strip())
    except InvalidOperation:
        usd = Decimal("NaN")
    if not usd.is_finite() or usd < 0:
        raise fail("usd_per_gb", f"{row['usd_per_gb']!r} is not a non-negative number of USD per GB")
    if usd > MAX_PRICE_USD:
        raise fail("usd_per_gb", f"{row['usd_per_gb']!r} is more than {MAX_PRICE_USD:,} USD per GB")
    provider = row["provider"].strip().lower()
    if not provider:
        raise fail("provider", "empty provider; name the cloud that charges (aws, gcp, azure)")
    return EgressRule(
        provider=provider,
        scope=scope,
        from_continent=from_c,
        to_continent=to_c,
        source_regions=frozenset(row["source_regions"].split()),
        dest_regions=frozenset(row["dest_regions"].split()),
        usd_per_gb=usd,
        note=row["note"].strip(),
        source=row["source"].strip(),
    )


class EgressTable:
    """Egress prices by provider and scope; answers "what does one GB from A to B cost?"."""

    def __init__(self, rules: tuple[EgressRule, ...], label: str = "egress.csv") -> None:
        self.rules = rules
        self.label = label

    @classmethod
    def read(cls, stream: TextIO, label: str) -> EgressTable:
        """Parse our ``egress.csv`` format; raises CatalogError naming file, line and column."""
        reader = csv.DictReader(stream)
        header = [name.strip() for name in reader.fieldnames or []]
        for name in _COLUMNS:
            if name not in header:
                raise CatalogError(
                    f"missing column {name!r}; expected {','.join(_COLUMNS)}", file=label, line=1
                )
        rules: list[EgressRule] = []
        seen: dict[tuple[object, ...], int] = {}
        for row in reader:
            if any(value is None for value in row.values()):
                raise CatalogError(
                    f"row has fewer fields than the header ({len(header)})", file=label, line=reader.line_num
                )
            rule = _parse_rule(row, label, reader.line_num, header)
            key = (
                rule.provider,
                rule.scope,
                rule.from_continent,
                rule.to_continent,
                rule.source_regions,
                rule.dest_regions,
            )
            if key in seen:
                raise CatalogError(
                    f"duplicates the rule on line {seen[key]}; keep one price per provider, scope and place",
                    file=label,
                    line=reader.line_num,
                )
            seen[key] = reader.line_num
            rules.append(rule)
        return cls(tuple(rules), label)

    def _resolve(self, src: Location, dst: Location) -> tuple[Decimal, str]:
        if src.provider == dst.provider and src.region == dst.region:
            return Decimal(0), "same region: transfers inside one region are not charged per GB"
        if src.provider in OWNED_PROVIDERS:
            return Decimal(0), (
                f"source is {src.provider}: owned links pay no per-GB egress "
                "(set a price with an `egress:` entry in the platform file)"
            )
        scope = "inter_region" if src.provider == dst.provider else "internet"
        candidates = [
            rule
            for rule in self.rules
            if rule.provider == src.provider and rule.scope == scope and rule.matches(src, dst)
        ]
        if not candidates:
            known = {rule.provider for rule in self.rules}
            what = f"{scope} egress rate for {src.provider}" if src.provider in known else "egress rates for"
            if src.provider not in known:
                what += f" provider {src.provider!r} (the table knows {', '.join(sorted(known))})"
            raise CatalogError(
                f"no {what} from {src.continent} ({src.region}) to {dst.provider} {dst.region} "
                f"({dst.continent}); {_OVERRIDE_HINT}",
                file=self.label,
            )
        best = max(candidates, key=EgressRule.specificity)
        return best.usd_per_gb, f"{scope.replace('_', '-')} rate: {best.describe()}"

    def listed_rate(self, src: Location, dst: Location) -> tuple[Decimal, DataUnit]:
        """The price per unit as the source's provider lists it, and that unit (GB, or GiB for gcp)."""
        return self._resolve(src, dst)[0], data_unit(src.provider)

    def rate_usd_per_gb(self, src: Location, dst: Location) -> Decimal:
        """USD the source's provider charges per decimal GB sent from ``src`` to ``dst``.

        A per-GiB price is converted (× 10^9 / 2^30). Raises CatalogError when a cloud source has no
        matching row, saying how to add an override.
        """
        rate, unit = self.listed_rate(src, dst)
        return per_gb_rate(rate, unit)

    def describe(self, src: Location, dst: Location) -> str:
        """Which rule prices ``src`` -> ``dst`` and why, in one line (for ``--explain``)."""
        rate, why = self._resolve(src, dst)
        unit = data_unit(src.provider)
        price = f"{rate} USD/{unit}"
        if unit != "GB" and rate:
            price += f" (= {per_gb_rate(rate, unit):.6f} USD/GB)"
        return f"{src.provider}:{src.region} -> {dst.provider}:{dst.region}: {price}; {why}"

    def inter_zone_usd_per_gb(self, provider: str) -> Decimal | None:
        """The provider's price between zones of one region, if the table has one."""
        rates = [
            rule.usd_per_gb for rule in self.rules if rule.provider == provider and rule.scope == "inter_zone"
        ]
        return rates[0] if rates else None
