"""The platform file (``stratus.yaml``): the sites a team owns and what each costs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, field_validator, model_validator

from stratus.config.models import AcceleratorField, Money, Provider, StrictModel

__all__ = [
    "Capacity",
    "Compute",
    "EgressOverride",
    "InlineOffering",
    "Platform",
    "RegistrySpec",
    "ReservedSpec",
    "ServerlessSpec",
    "Site",
    "StorageTimeouts",
]

STORAGE_SCHEMES = ("file", "memory", "s3", "gs", "gcs", "az", "abfs")


class Capacity(StrictModel):
    """The most one step may use at a site; ``None`` means no limit beyond the offerings themselves."""

    vcpus: PositiveFloat | None = None
    memory_gb: PositiveFloat | None = None
    accelerators: dict[str, NonNegativeInt] = Field(
        default_factory=dict, description="accelerator name → the most devices one step may use"
    )
    max_parallel_steps: PositiveInt | None = None


class ServerlessSpec(StrictModel):
    """A function service's price and limits; defaults are AWS Lambda's published x86 list prices."""

    usd_per_gb_second: Money = Decimal("0.0000166667")
    usd_per_request: Money = Decimal("0.0000002")
    max_memory_gb: PositiveFloat = 10.0
    max_duration_s: PositiveFloat = 900.0
    gb_per_vcpu: PositiveFloat = Field(default=1.769, description="memory that buys one vCPU, as on Lambda")


class Compute(StrictModel):
    """Where steps execute at a site."""

    backend: Literal["local", "kubernetes", "serverless", "ray"] = "local"
    context: str | None = Field(default=None, description="kube context, for backend: kubernetes")
    capacity: Capacity = Field(default_factory=Capacity)
    serverless: ServerlessSpec = Field(
        default_factory=ServerlessSpec, description="pricing and limits, for backend: serverless"
    )
    address: str | None = Field(
        default=None,
        pattern=r"^https?://[^/\s]+/?$",
        description="the Ray Jobs API (dashboard) of the cluster, e.g. http://head:8265, for backend: ray",
    )

    @model_validator(mode="after")
    def _ray_needs_address(self) -> Compute:
        if self.backend == "ray" and self.address is None:
            raise ValueError("compute.backend: ray needs compute.address, e.g. http://127.0.0.1:8265")
        return self


class ReservedSpec(StrictModel):
    """Committed capacity: ``count`` machines already paid for at a lower hourly rate."""

    count: PositiveInt
    price_per_hour_usd: Money


class InlineOffering(StrictModel):
    """A machine shape priced by the user (on-prem amortised cost, negotiated rates, ...)."""

    name: str = Field(min_length=1)
    vcpus: PositiveFloat
    memory_gb: PositiveFloat
    accelerators: AcceleratorField | None = None
    price_per_hour_usd: Money
    spot_price_per_hour_usd: Money | None = None
    reserved: ReservedSpec | None = None


class StorageTimeouts(StrictModel):
    """How long a site's object store gets before a request fails (applied to every cloud SDK)."""

    connect_s: PositiveFloat = Field(default=5.0, le=600, description="seconds to open a connection")
    read_s: PositiveFloat = Field(default=30.0, le=3600, description="seconds to wait for the next bytes")
    attempts: PositiveInt = Field(default=3, le=20, description="tries per request, the first included")


class Site(StrictModel):
    """One place that stores data and runs steps: a cloud region, a cluster, a machine."""

    provider: Provider
    region: str = Field(min_length=1)
    jurisdiction: str | None = Field(
        default=None, description="legal area, e.g. US, EU, UK; derived from the region for cloud providers"
    )
    continent: str | None = Field(default=None, description="derived from the region or jurisdiction")
    storage: str = Field(description="fsspec URL of the site's storage root, e.g. s3://bucket/prefix")
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="passed to the fsspec filesystem (endpoint_url, ...); keep secrets in env",
    )
    storage_timeouts: StorageTimeouts = Field(
        default_factory=StorageTimeouts,
        description="connect/read timeouts and tries per request for the site's store (docs/hardening.md)",
    )
    compute: Compute = Field(default_factory=Compute)
    offerings: Literal["catalog"] | list[InlineOffering] = "catalog"

    @field_validator("storage")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in STORAGE_SCHEMES:
            expected = ", ".join(f"{s}://" for s in STORAGE_SCHEMES)
            raise ValueError(f"storage URL {value!r} has no known scheme; expected one of {expected}")
        return value

    @field_validator("jurisdiction")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class EgressOverride(StrictModel):
    """A negotiated or private-link egress price that replaces the catalog's for matching transfers."""

    from_: str = Field(alias="from", description="site name or provider")
    to: str = Field(description="site name, provider, or 'internet'")
    usd_per_gb: Money


class RegistrySpec(StrictModel):
    """Where exported models are registered, and in which jurisdiction its model files are stored.

    ``tracking_uri`` absent: the embedded store in ``.stratus/``. ``jurisdiction`` absent: none is
    declared, and only models with no residency may be registered (a resident model's files would land
    somewhere nobody vouched for).
    """

    tracking_uri: str | None = Field(
        default=None,
        min_length=1,
        pattern=r"^(https?|sqlite|postgresql|mysql|mssql|databricks(-uc)?)(\+\w+)?:",
        description="MLflow tracking URI, e.g. http://mlflow.internal:5000; absent: the store in .stratus/",
    )
    jurisdiction: str | None = Field(
        default=None,
        min_length=1,
        description="legal area where the registry's artifact store keeps model files, e.g. EU",
    )

    @field_validator("jurisdiction")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class Platform(StrictModel):
    """The whole platform file."""

    sites: dict[str, Site] = Field(min_length=1)
    egress: list[EgressOverride] = Field(default_factory=list)
    transfer_gbps: PositiveFloat = Field(
        default=1.0, description="assumed bandwidth between sites, for the time objective"
    )
    registry: RegistrySpec | None = None
