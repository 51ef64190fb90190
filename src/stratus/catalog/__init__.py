"""Price catalog: what each cloud sells where, at what hourly price, what moving and keeping a GB costs.

Bundled data are SkyPilot v8 catalogs (see ``data/SOURCES.md`` for sources and the cleaning rules);
a team may import a fuller catalog beside its platform file with :func:`import_catalog`.
"""

from __future__ import annotations

from stratus.catalog.billing import BILLED_DATA_UNIT, data_unit
from stratus.catalog.catalog import COVERAGE_NOTES, PROVIDERS, Catalog, ProviderCatalog
from stratus.catalog.egress import OWNED_PROVIDERS, EgressRule, EgressTable, Location
from stratus.catalog.gcp_pairing import GCP_GPU_HOSTS
from stratus.catalog.importer import import_catalog
from stratus.catalog.offerings import Offering, ReservedPrice, SkippedRow
from stratus.catalog.regions import (
    CONTINENTS,
    RegionInfo,
    continent_of_jurisdiction,
    known_regions,
    region_info,
)
from stratus.catalog.storage import StorageRate, StorageTable

__all__ = [
    "BILLED_DATA_UNIT",
    "CONTINENTS",
    "COVERAGE_NOTES",
    "GCP_GPU_HOSTS",
    "OWNED_PROVIDERS",
    "PROVIDERS",
    "Catalog",
    "EgressRule",
    "EgressTable",
    "Location",
    "Offering",
    "ProviderCatalog",
    "RegionInfo",
    "ReservedPrice",
    "SkippedRow",
    "StorageRate",
    "StorageTable",
    "continent_of_jurisdiction",
    "data_unit",
    "import_catalog",
    "known_regions",
    "region_info",
]
