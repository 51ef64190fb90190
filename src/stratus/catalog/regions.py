"""Where each cloud region is: continent (for egress prices) and jurisdiction (for residency rules).

The table covers every region in the bundled catalogs plus the other public regions of the three clouds,
so a user-imported SkyPilot catalog still resolves. Jurisdiction is the legal area a residency rule
names: EU member states map to ``"EU"`` (one data-protection regime), everything else to its ISO 3166
country code, except the United Kingdom, which users and regulators call ``"UK"`` (ISO: GB).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CONTINENTS", "RegionInfo", "continent_of_jurisdiction", "known_regions", "region_info"]

CONTINENTS = (
    "north_america",
    "south_america",
    "europe",
    "asia",
    "oceania",
    "africa",
    "middle_east",
)

# The 27 EU member states (ISO 3166-1 alpha-2).
_EU_MEMBERS = frozenset(
    {"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE"}
    | {"IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"}
)

_NA, _SA, _EU, _AS, _OC, _AF, _ME = CONTINENTS[0], CONTINENTS[1], *CONTINENTS[2:]

# provider -> region -> (continent, ISO country). Jurisdiction is derived from the country below.
_REGIONS: dict[str, dict[str, tuple[str, str]]] = {
    "aws": {
        "af-south-1": (_AF, "ZA"),  # Cape Town
        "ap-east-1": (_AS, "HK"),  # Hong Kong
        "ap-east-2": (_AS, "TW"),  # Taipei
        "ap-northeast-1": (_AS, "JP"),  # Tokyo
        "ap-northeast-2": (_AS, "KR"),  # Seoul
        "ap-northeast-3": (_AS, "JP"),  # Osaka
        "ap-south-1": (_AS, "IN"),  # Mumbai
        "ap-south-2": (_AS, "IN"),  # Hyderabad
        "ap-southeast-1": (_AS, "SG"),  # Singapore
        "ap-southeast-2": (_OC, "AU"),  # Sydney
        "ap-southeast-3": (_AS, "ID"),  # Jakarta
        "ap-southeast-4": (_OC, "AU"),  # Melbourne
        "ap-southeast-5": (_AS, "MY"),  # Malaysia
        "ap-southeast-7": (_AS, "TH"),  # Thailand
        "ca-central-1": (_NA, "CA"),  # Montreal
        "ca-west-1": (_NA, "CA"),  # Calgary
        "eu-central-1": (_EU, "DE"),  # Frankfurt
        "eu-central-2": (_EU, "CH"),  # Zurich
        "eu-north-1": (_EU, "SE"),  # Stockholm
        "eu-south-1": (_EU, "IT"),  # Milan
        "eu-south-2": (_EU, "ES"),  # Spain
        "eu-west-1": (_EU, "IE"),  # Ireland
        "eu-west-2": (_EU, "GB"),  # London
        "eu-west-3": (_EU, "FR"),  # Paris
        "il-central-1": (_ME, "IL"),  # Tel Aviv
        "me-central-1": (_ME, "AE"),  # UAE
        "me-south-1": (_ME, "BH"),  # Bahrain
        "mx-central-1": (_NA, "MX"),  # Mexico
        "sa-east-1": (_SA, "BR"),  # Sao Paulo
        "us-east-1": (_NA, "US"),
        "us-east-2": (_NA, "US"),
        "us-west-1": (_NA, "US"),
        "us-west-2": (_NA, "US"),
    },
    "gcp": {
        "africa-south1": (_AF, "ZA"),  # Johannesburg
        "asia-east1": (_AS, "TW"),  # Taiwan
        "asia-east2": (_AS, "HK"),  # Hong Kong
        "asia-northeast1": (_AS, "JP"),  # Tokyo
        "asia-northeast2": (_AS, "JP"),  # Osaka
        "asia-northeast3": (_AS, "KR"),  # Seoul
        "asia-south1": (_AS, "IN"),  # Mumbai
        "asia-south2": (_AS, "IN"),  # Delhi
        "asia-southeast1": (_AS, "SG"),  # Singapore
        "asia-southeast2": (_AS, "ID"),  # Jakarta
        "australia-southeast1": (_OC, "AU"),  # Sydney
        "australia-southeast2": (_OC, "AU"),  # Melbourne
        "europe-central2": (_EU, "PL"),  # Warsaw
        "europe-north1": (_EU, "FI"),  # Hamina
        "europe-north2": (_EU, "SE"),  # Stockholm
        "europe-southwest1": (_EU, "ES"),  # Madrid
        "europe-west1": (_EU, "BE"),  # St. Ghislain
        "europe-west2": (_EU, "GB"),  # London
        "europe-west3": (_EU, "DE"),  # Frankfurt
        "europe-west4": (_EU, "NL"),  # Eemshaven
        "europe-west6": (_EU, "CH"),  # Zurich
        "europe-west8": (_EU, "IT"),  # Milan
        "europe-west9": (_EU, "FR"),  # Paris
        "europe-west10": (_EU, "DE"),  # Berlin
        "europe-west12": (_EU, "IT"),  # Turin
        "me-central1": (_ME, "QA"),  # Doha
        "me-central2": (_ME, "SA"),  # Dammam (Saudi Arabia)
        "me-west1": (_ME, "IL"),  # Tel Aviv
        "northamerica-northeast1": (_NA, "CA"),  # Montreal
        "northamerica-northeast2": (_NA, "CA"),  # Toronto
        "northamerica-south1": (_NA, "MX"),  # Queretaro
        "southamerica-east1": (_SA, "BR"),  # Sao Paulo
        "southamerica-west1": (_SA, "CL"),  # Santiago
        "us-central1": (_NA, "US"),
        "us-east1": (_NA, "US"),
        "us-east4": (_NA, "US"),
        "us-east5": (_NA, "US"),
        "us-south1": (_NA, "US"),
        "us-west1": (_NA, "US"),
        "us-west2": (_NA, "US"),
        "us-west3": (_NA, "US"),
        "us-west4": (_NA, "US"),
    },
    "azure": {
        "australiaeast": (_OC, "AU"),
        "australiasoutheast": (_OC, "AU"),
        "brazilsouth": (_SA, "BR"),
        "canadacentral": (_NA, "CA"),
        "canadaeast": (_NA, "CA"),
        "centralindia": (_AS, "IN"),
        "centralus": (_NA, "US"),
        "eastasia": (_AS, "HK"),
        "eastus": (_NA, "US"),
        "eastus2": (_NA, "US"),
        "francecentral": (_EU, "FR"),
        "germanywestcentral": (_EU, "DE"),
        "israelcentral": (_ME, "IL"),
        "italynorth": (_EU, "IT"),
        "japaneast": (_AS, "JP"),
        "japanwest": (_AS, "JP"),
        "koreacentral": (_AS, "KR"),
        "mexicocentral": (_NA, "MX"),
        "northcentralus": (_NA, "US"),
        "northeurope": (_EU, "IE"),  # Ireland
        "norwayeast": (_EU, "NO"),
        "polandcentral": (_EU, "PL"),
        "qatarcentral": (_ME, "QA"),
        "southafricanorth": (_AF, "ZA"),
        "southcentralus": (_NA, "US"),
        "southeastasia": (_AS, "SG"),
        "southindia": (_AS, "IN"),
        "spaincentral": (_EU, "ES"),
        "swedencentral": (_EU, "SE"),
        "switzerlandnorth": (_EU, "CH"),
        "uaenorth": (_ME, "AE"),
        "uksouth": (_EU, "GB"),
        "ukwest": (_EU, "GB"),
        "westcentralus": (_NA, "US"),
        "westeurope": (_EU, "NL"),  # Netherlands
        "westus": (_NA, "US"),
        "westus2": (_NA, "US"),
        "westus3": (_NA, "US"),
    },
}


@dataclass(frozen=True)
class RegionInfo:
    """One cloud region's location: ``continent`` prices egress, ``jurisdiction`` decides residency."""

    provider: str
    region: str
    continent: str
    jurisdiction: str
    country: str | None = None


def _jurisdiction(country: str) -> str:
    if country in _EU_MEMBERS:
        return "EU"
    return "UK" if country == "GB" else country


def region_info(provider: str, region: str) -> RegionInfo | None:
    """The location of ``provider``'s ``region``, or None when the table does not know it."""
    entry = _REGIONS.get(provider.lower(), {}).get(region)
    if entry is None:
        return None
    continent, country = entry
    return RegionInfo(provider.lower(), region, continent, _jurisdiction(country), country)


def known_regions(provider: str) -> tuple[str, ...]:
    """Every region of ``provider`` the table knows, sorted (empty for unknown providers)."""
    return tuple(sorted(_REGIONS.get(provider.lower(), {})))


def _jurisdiction_continents() -> dict[str, str]:
    table: dict[str, str] = {}
    for regions in _REGIONS.values():
        for continent, country in regions.values():
            table.setdefault(_jurisdiction(country), continent)
            table.setdefault(country, continent)
    return table


_JURISDICTION_CONTINENT = _jurisdiction_continents()


def continent_of_jurisdiction(code: str) -> str | None:
    """The continent of a jurisdiction or ISO country code (``EU`` -> europe, ``DE`` -> europe), if known.

    Lets an on-prem site that names only ``jurisdiction: EU`` still get an egress continent.
    """
    return _JURISDICTION_CONTINENT.get(code.strip().upper())
