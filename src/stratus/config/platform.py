"""The platform file (``stratus.yaml``): the sites a team owns and what each costs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from stratus.config.budgets import Budgets, Quotas
from stratus.config.models import (
    AcceleratorField,
    Money,
    Provider,
    SafeName,
    StrictModel,
    bounded_int,
    finite,
)
from stratus.limits import (
    MAX_ACCELERATORS,
    MAX_DURATION_S,
    MAX_MEMORY_GB,
    MAX_PARALLEL_STEPS,
    MAX_RESERVED,
    MAX_SITES,
    MAX_TRANSFER_GBPS,
    MAX_VCPUS,
)

__all__ = [
    "LIBRARY_PREFIX",
    "Capacity",
    "Compute",
    "EgressOverride",
    "InlineOffering",
    "Platform",
    "PolicySpec",
    "RegistrySpec",
    "ReservedSpec",
    "SecretsSpec",
    "ServerlessSpec",
    "Site",
    "StorageTimeouts",
    "VaultSpec",
    "policy_path",
]

STORAGE_SCHEMES = ("file", "memory", "s3", "gs", "gcs", "az", "abfs")


class Capacity(StrictModel):
    """The most one step may use at a site; ``None`` means no limit beyond the offerings themselves."""

    vcpus: Annotated[float, finite(gt=0, le=MAX_VCPUS)] | None = None
    memory_gb: Annotated[float, finite(gt=0, le=MAX_MEMORY_GB)] | None = None
    accelerators: dict[str, Annotated[int, bounded_int(ge=0, le=MAX_ACCELERATORS)]] = Field(
        default_factory=dict, description="accelerator name → the most devices one step may use"
    )
    max_parallel_steps: Annotated[int, bounded_int(le=MAX_PARALLEL_STEPS)] | None = None


class ServerlessSpec(StrictModel):
    """A function service's price and limits; defaults are AWS Lambda's published x86 list prices."""

    usd_per_gb_second: Money = Decimal("0.0000166667")
    usd_per_request: Money = Decimal("0.0000002")
    max_memory_gb: Annotated[float, finite(gt=0, le=MAX_MEMORY_GB)] = 10.0
    max_duration_s: Annotated[float, finite(gt=0, le=MAX_DURATION_S)] = 900.0
    gb_per_vcpu: Annotated[float, finite(gt=0, le=MAX_MEMORY_GB)] = Field(
        default=1.769, description="memory that buys one vCPU, as on Lambda"
    )


class Compute(StrictModel):
    """Where steps execute at a site."""

    backend: Literal["local", "kubernetes", "serverless", "ray"] = "local"
    context: str | None = Field(default=None, description="kube context, for backend: kubernetes")
    capacity: Capacity = Field(default_factory=Capacity)
    serverless: ServerlessSpec = Field(
        default_factory=ServerlessSpec, description="pricing and limits, for backend: serverless"
    )
    # backend: kubernetes only (docs/kubernetes.md).
    namespace: str = Field(
        default="default",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="kubernetes: namespace the site's objects live in",
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        description="kubernetes: REGISTRY/IMAGE:TAG with stratus and the steps' code",
    )
    kubeconfig: str | None = Field(
        default=None,
        min_length=1,
        description="kubernetes: kubeconfig path; absent: $KUBECONFIG or ~/.kube/config",
    )
    kubernetes_version: str = Field(
        default="1.33",
        pattern=r"^1\.[0-9]{2}$",
        description="kubernetes: the cluster's minor version; manifests are checked against its schemas",
    )
    operators: list[Literal["kuberay", "kserve", "training-operator", "jobset"]] = Field(
        default_factory=list,
        description="kubernetes: operators installed in the cluster (their CRDs are used)",
    )
    work_claim: str | None = Field(
        default=None,
        min_length=1,
        description="kubernetes: ReadWriteMany PVC, also mounted at the runner's work folder (steps' files)",
    )

    address: str | None = Field(
        default=None,
        pattern=r"^https?://[^/\s]+/?$",
        description="the Ray Jobs API (dashboard) of the cluster, e.g. http://head:8265, for backend: ray",
    )

    @model_validator(mode="after")
    def _kubernetes_needs_context_and_image(self) -> Compute:
        if self.backend == "kubernetes":
            missing = [name for name in ("context", "image") if getattr(self, name) is None]
            if missing:
                raise ValueError(
                    f"backend: kubernetes needs {' and '.join(missing)} "
                    "(e.g. context: aws, image: registry.example.com/stratus:1.0)"
                )
        if self.backend == "ray" and self.address is None:
            raise ValueError("compute.backend: ray needs compute.address, e.g. http://127.0.0.1:8265")
        return self


class ReservedSpec(StrictModel):
    """Committed capacity: ``count`` machines already paid for at a lower hourly rate."""

    count: Annotated[int, bounded_int(le=MAX_RESERVED)]
    price_per_hour_usd: Money


class InlineOffering(StrictModel):
    """A machine shape priced by the user (on-prem amortised cost, negotiated rates, ...)."""

    name: str = Field(min_length=1)
    vcpus: Annotated[float, finite(gt=0, le=MAX_VCPUS)]
    memory_gb: Annotated[float, finite(gt=0, le=MAX_MEMORY_GB)]
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
    somewhere nobody vouched for). ``artifacts``: sites whose content-addressed stores also keep every
    registered model's bytes (``artifacts: aws-eu`` is short for ``[aws-eu]``), so losing the registry's
    own artifact store, or one of these sites, loses no model (docs/serving.md).
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
    artifacts: list[SafeName] = Field(
        default_factory=list,
        max_length=MAX_SITES,
        description="sites whose stores also keep each registered model's bytes (content-addressed)",
    )

    @field_validator("jurisdiction")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    @field_validator("artifacts", mode="before")
    @classmethod
    def _one_site(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class VaultSpec(StrictModel):
    """The Vault-compatible server ``vault:`` references are read from (else $VAULT_ADDR/$VAULT_TOKEN)."""

    address: str | None = Field(default=None, pattern=r"^https?://", description="e.g. http://127.0.0.1:8200")
    token_ref: str | None = Field(
        default=None, description="env:NAME or file:PATH holding the token (resolved before validation)"
    )


class SecretsSpec(StrictModel):
    """Where secret references are resolved (docs/secrets.md)."""

    vault: VaultSpec | None = None


#: ``policies.modules`` entry naming the Rego library shipped with Stratus (or one file of it).
LIBRARY_PREFIX = "stratus:library"
LIBRARY_DIR = Path(__file__).resolve().parents[1] / "policy" / "library"


def policy_path(entry: str, base: Path) -> Path:
    """Where a ``policies`` entry points: the shipped library, or a path relative to the platform file."""
    if entry == LIBRARY_PREFIX:
        return LIBRARY_DIR
    if entry.startswith(LIBRARY_PREFIX + "/"):
        return LIBRARY_DIR / entry.removeprefix(LIBRARY_PREFIX + "/")
    return base / entry


class PolicySpec(StrictModel):
    """Rego policies evaluated at every decision point (docs/policy.md); paths are relative to this file.

    Written as a list, it is ``modules`` alone: ``policies: [policies/]``.
    """

    modules: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1,
        description=".rego files or directories (every *.rego below, *_test.rego excepted); "
        "`stratus:library` is the shipped library, `stratus:library/NAME.rego` one file of it",
    )
    data: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="YAML or JSON files merged into the data document (e.g. stratus.teams)",
    )
    timeout_s: Annotated[float, finite(gt=0, le=60)] = Field(
        default=1.0, description="the most one decision may take; a later one is then denied (fail closed)"
    )

    @model_validator(mode="before")
    @classmethod
    def _list_is_modules(cls, value: Any) -> Any:
        return {"modules": value} if isinstance(value, list) else value


class Platform(StrictModel):
    """The whole platform file."""

    sites: dict[SafeName, Site] = Field(min_length=1)
    egress: list[EgressOverride] = Field(default_factory=list)
    transfer_gbps: Annotated[float, finite(gt=0, le=MAX_TRANSFER_GBPS)] = Field(
        default=1.0, description="assumed bandwidth between sites, for the time objective"
    )
    registry: RegistrySpec | None = None
    secrets: SecretsSpec | None = None
    policies: PolicySpec | None = None
    budgets: Budgets | None = Field(
        default=None, description="monthly USD per team and project, checked by plan and run"
    )
    quotas: Quotas = Field(
        default_factory=dict,
        description="team → site → {vcpus, gpus}: the most that team's steps hold at once there",
    )

    @model_validator(mode="after")
    def _quota_sites_exist(self) -> Platform:
        for team, sites in self.quotas.items():
            unknown = [s for s in sites if s not in self.sites]
            if unknown:
                raise ValueError(
                    f"quotas.{team} names {', '.join(unknown)}, which is not a site of this platform; "
                    f"expected some of: {', '.join(self.sites)}"
                )
        return self

    @model_validator(mode="after")
    def _registry_sites_exist(self) -> Platform:
        unknown = [s for s in (self.registry.artifacts if self.registry else []) if s not in self.sites]
        if unknown:
            raise ValueError(
                f"registry.artifacts names {', '.join(unknown)}, which is not a site of this platform; "
                f"expected some of: {', '.join(self.sites)}"
            )
        return self
