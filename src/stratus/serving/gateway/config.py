"""The gateway's configuration: sites (model servers), per-model routes, health, outlier and retry knobs.

Frozen pydantic models, so a running gateway can hand its config around without defensive copies. Cross
references (a route naming a site that does not exist, two sites with one name) are checked by
:func:`reference_problems`, which both the model validator and :func:`load_gateway_config` use: the
loader turns each problem into a ConfigError that points at the line of the user's file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stratus.config.errors import translate
from stratus.config.source import Located, PathKey, format_path, read_yaml
from stratus.errors import ConfigError
from stratus.serving.limits import ServingLimits

__all__ = [
    "TOKEN_ENV",
    "GatewayConfig",
    "GrpcFront",
    "HealthCheck",
    "ModelRoute",
    "OutlierDetection",
    "Upstream",
    "UpstreamRetry",
    "load_gateway_config",
    "reference_problems",
]

TOKEN_ENV = "STRATUS_GATEWAY_TOKEN"
_DEFER_REFERENCES = "defer_references"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthCheck(_Frozen):
    """Active checks: GET ``path`` on every site each ``interval_s``; sub-second so failover is quick."""

    path: str = Field(default="/v2/health/ready", pattern=r"^/")
    interval_s: float = Field(default=0.25, gt=0)
    timeout_s: float = Field(default=0.5, gt=0)
    unhealthy_threshold: int = Field(default=2, ge=1)
    healthy_threshold: int = Field(default=1, ge=1)


class OutlierDetection(_Frozen):
    """Passive checks on real traffic: ``consecutive_errors`` in a row eject a site for a growing time."""

    consecutive_errors: int = Field(default=3, ge=1)
    base_ejection_s: float = Field(default=1.0, gt=0)
    max_ejection_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _max_not_below_base(self) -> OutlierDetection:
        if self.max_ejection_s < self.base_ejection_s:
            raise ValueError(
                f"max_ejection_s ({self.max_ejection_s}) must be at least base_ejection_s "
                f"({self.base_ejection_s})"
            )
        return self


class UpstreamRetry(_Frozen):
    """Retries on another site, bounded by a budget so that a sick fleet is not hammered by them."""

    max_attempts: int = Field(default=3, ge=1)
    budget_ratio: float = Field(default=0.2, ge=0)
    min_retries_per_s: float = Field(default=5.0, ge=0)
    upstream_timeout_s: float = Field(default=10.0, gt=0)


class Upstream(_Frozen):
    """One backend: a model server reachable at ``url`` (plain ``http://host:port``, no path).

    ``site`` groups backends: several model servers of one site (replicas, named e.g. ``a``, ``a~2``) are
    one site to the routing policies, which pick a site and then spread its requests over its routable
    replicas; answers name the site in ``x-stratus-site``. Without it a backend is a site of its own.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.~-]*$")
    site: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    url: str
    priority: int = 0
    weight: float = Field(default=1.0, ge=0)
    cost_per_hour: float = Field(default=0.0, ge=0)
    # The site's gRPC port on the host of ``url``; a site without one gets no gRPC requests.
    grpc_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("url")
    @classmethod
    def _plain_http(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"invalid URL {url!r}: {exc}; expected http://host:port") from None
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected http://host:port (the gateway speaks plain HTTP/1.1), got {url!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError(f"expected http://host:port with no path, query or user, got {url!r}")
        if port == 0:
            raise ValueError(f"port 0 is not a port a server listens on, in {url!r}")
        return url

    @property
    def site_name(self) -> str:
        """The site this backend serves for: ``site``, or its own name."""
        return self.site or self.name

    @property
    def host(self) -> str:
        """The host part of ``url`` (brackets of an IPv6 literal removed)."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The port of ``url``; 80 when it names none."""
        return urlsplit(self.url).port or 80


class GrpcFront(_Frozen):
    """The gateway's gRPC listener (``inference.GRPCInferenceService``), on the gateway's host."""

    port: int = Field(ge=0, le=65535)


class ModelRoute(_Frozen):
    """How requests for one model pick a site; ``sites`` None means every site, in the config's order."""

    policy: Literal["failover", "latency", "weighted", "cost"] = "latency"
    sites: list[str] | None = Field(default=None, min_length=1)


class GatewayConfig(_Frozen):
    """The whole gateway: where it listens, its sites, its routes and the health/outlier/retry knobs."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Kept out of repr so that logging the config never prints the token.
    admin_token: str | None = Field(default=None, min_length=1, repr=False)
    health: HealthCheck = HealthCheck()
    outlier: OutlierDetection = OutlierDetection()
    retry: UpstreamRetry = UpstreamRetry()
    # Timeouts, the connection cap, the body size limit and the bytes in flight (docs/hardening.md).
    limits: ServingLimits = ServingLimits()
    # Off unless given: gRPC requests routed to the sites' ``grpc_port`` (docs/serving.md, "gRPC").
    grpc: GrpcFront | None = None
    sites: list[Upstream] = Field(min_length=1)
    models: dict[str, ModelRoute] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> GatewayConfig:
        if isinstance(info.context, dict) and info.context.get(_DEFER_REFERENCES):
            return self  # load_gateway_config reports them itself, with the line in the file
        problems = reference_problems(self)
        if problems:
            raise ValueError("; ".join(f"{format_path(path)}: {message}" for path, message in problems))
        return self

    def route_sites(self, model: str) -> list[Upstream]:
        """The backends a model may be served from, in the order the config lists them for it.

        A listed name is a backend's or a site's (then every backend of that site, in config order).
        """
        names = self.models[model].sites
        if names is None:
            return list(self.sites)
        chosen: dict[str, Upstream] = {}
        for name in names:
            for site in self.sites:
                if name in (site.name, site.site_name):
                    chosen.setdefault(site.name, site)
        return list(chosen.values())


def reference_problems(config: GatewayConfig) -> list[tuple[PathKey, str]]:
    """Every cross-reference mistake, as (field path, message): duplicate site names, unknown sites."""
    problems: list[tuple[PathKey, str]] = []
    seen: dict[str, int] = {}
    for i, site in enumerate(config.sites):
        if site.name in seen:
            problems.append(
                (("sites", i, "name"), f"duplicate site name {site.name!r} (also sites[{seen[site.name]}])")
            )
        seen.setdefault(site.name, i)
    known = ", ".join(seen)
    groups = {site.site_name for site in config.sites} | set(seen)
    for model, route in config.models.items():
        listed: set[str] = set()
        for j, name in enumerate(route.sites or []):
            if name not in groups:
                problems.append((("models", model, "sites", j), f"no site named {name!r}; sites: {known}"))
            elif name in listed:
                problems.append((("models", model, "sites", j), f"site {name!r} is listed twice"))
            listed.add(name)
    if config.grpc is not None and all(site.grpc_port is None for site in config.sites):
        problems.append((("grpc",), "no site has a grpc_port, so gRPC requests would have nowhere to go"))
    return problems


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read a JSON or YAML gateway config; every mistake is a ConfigError naming the file and the field."""
    located = _read(Path(path))
    data = located.data
    if isinstance(data, dict) and "admin_token" in data:
        token = data["admin_token"]
        # Checked here so that pydantic's "(got ...)" never echoes a secret into an error message.
        if token is not None and (not isinstance(token, str) or not token):
            raise located.error(("admin_token",), "expected a non-empty string (the value is not shown)")
    try:
        config = GatewayConfig.model_validate(data, context={_DEFER_REFERENCES: True})
    except ValidationError as exc:
        raise translate(exc, located, GatewayConfig) from None
    problems = reference_problems(config)
    if problems:
        where, message = problems[0]
        raise located.error(where, message)
    return config


def _read(path: Path) -> Located:
    """YAML (which keeps line numbers); a ``.json`` file YAML cannot read (tabs) falls back to json."""
    try:
        return read_yaml(path)
    except ConfigError as yaml_error:
        if path.suffix.lower() != ".json" or yaml_error.line is None:
            raise
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"invalid JSON: {exc.msg}", file=str(path), line=exc.lineno, column=exc.colno
            ) from None
        if not isinstance(data, dict):
            raise ConfigError("expected a JSON object at the top level", file=str(path)) from None
        return Located(file=str(path), data=data)
