"""Load the two user files into validated models, checking what one file says about the other."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from stratus.catalog import RegionInfo, continent_of_jurisdiction, region_info
from stratus.config.errors import translate
from stratus.config.graph import find_cycle, parse_input, step_dependencies
from stratus.config.locate import resolve_platform_path
from stratus.config.models import PROVIDERS
from stratus.config.pipeline import Pipeline
from stratus.config.platform import LIBRARY_PREFIX, Platform, Site, policy_path
from stratus.config.secret_fields import resolve_platform_secrets
from stratus.config.source import Located, read_yaml
from stratus.redact import register_secrets, secrets_in_options

__all__ = ["load_pipeline", "load_platform", "resolve_platform_path"]

_Model = TypeVar("_Model", bound=BaseModel)


def load_platform(path: Path | str) -> Platform:
    """Parse and check a platform file; jurisdiction and continent are filled in from the region table."""
    located = read_yaml(Path(path))
    # References (env:, file:, vault:) become their values, registered for redaction; literals are
    # refused unless allowed. Then, before validation, which may echo a value: every credential in the
    # file (storage options, passwords in storage and registry URLs) is hidden from here on.
    resolve_platform_secrets(located)
    register_secrets(secrets_in_options(located.data))
    platform = _validate(located, Platform)
    sites = {name: _resolve_site(name, site, located) for name, site in platform.sites.items()}
    for i, override in enumerate(platform.egress):
        for key, value in (("from", override.from_), ("to", override.to)):
            allowed = value in sites or value in PROVIDERS or (key == "to" and value == "internet")
            if not allowed:
                extra = ", 'internet'" if key == "to" else ""
                raise located.error(
                    ("egress", i, key),
                    f"{value!r} is neither a site nor a provider; expected one of the sites "
                    f"({', '.join(sites)}), a provider ({', '.join(PROVIDERS)}){extra}",
                )
    _check_policies(platform, located, Path(path).parent)
    return platform.model_copy(update={"sites": sites})


def _check_policies(platform: Platform, located: Located, base: Path) -> None:
    """Every ``policies`` path exists: a module is a ``.rego`` file or a directory, data a file."""
    spec = platform.policies
    if spec is None:
        return
    short = isinstance(located.data, dict) and isinstance(located.data.get("policies"), list)
    for i, entry in enumerate(spec.modules):
        where = policy_path(entry, base)
        if where.is_dir() or (where.is_file() and where.suffix == ".rego"):
            continue
        library = entry.startswith(LIBRARY_PREFIX)
        hint = (
            "a file of the shipped library (see docs/policy.md)" if library else "a .rego file or a directory"
        )
        found = "does not exist" if not where.exists() else "is not a .rego file"
        key = ("policies", i) if short else ("policies", "modules", i)
        raise located.error(key, f"{entry!r} {found} ({where}); expected {hint}")
    for i, entry in enumerate(spec.data):
        where = policy_path(entry, base)
        if not where.is_file() or where.suffix not in (".yaml", ".yml", ".json"):
            raise located.error(
                ("policies", "data", i), f"{entry!r} is not a YAML or JSON file ({where}); expected one"
            )


def _resolve_site(name: str, site: Site, located: Located) -> Site:
    info = region_info(site.provider, site.region)
    if info is not None:
        _check_claims(name, site, info, located)
    jurisdiction = site.jurisdiction or (info.jurisdiction if info else None)
    if jurisdiction is None:
        reason = (
            "an on-prem or local site"
            if site.provider in ("onprem", "local")
            else f"region {site.region!r} is not in the bundled region table"
        )
        raise located.error(
            ("sites", name, "region"),
            f"jurisdiction cannot be derived ({reason}); add `jurisdiction:` (e.g. US, EU, UK) to the site",
        )
    continent = (
        site.continent or (info.continent if info else None) or continent_of_jurisdiction(jurisdiction)
    )
    if continent is None:
        raise located.error(
            ("sites", name),
            f"continent cannot be derived from jurisdiction {jurisdiction!r}; add `continent:` "
            "(north_america, south_america, europe, asia, oceania, africa or middle_east)",
        )
    return site.model_copy(update={"jurisdiction": jurisdiction, "continent": continent})


def _check_claims(name: str, site: Site, info: RegionInfo, located: Located) -> None:
    """A cloud region's location is a fact of the region table, not the user's to restate differently.

    Residency rests on ``jurisdiction``: a US region declared ``EU`` would let EU data be processed and
    stored in the US. Only providers without a region table (``onprem``, ``local``) say where they are.
    """
    where = f"{site.provider} region {site.region} is in"
    if site.jurisdiction is not None and site.jurisdiction != info.jurisdiction:
        raise located.error(
            ("sites", name, "jurisdiction"),
            f"jurisdiction {site.jurisdiction} contradicts the region: {where} {info.jurisdiction} "
            f"(country {info.country}); remove `jurisdiction:` (it is derived) or fix `region:`",
        )
    if site.continent is not None and site.continent != info.continent:
        raise located.error(
            ("sites", name, "continent"),
            f"continent {site.continent} contradicts the region: {where} {info.continent}; "
            "remove `continent:` (it is derived) or fix `region:`",
        )


def load_pipeline(path: Path | str, platform: Platform | None = None) -> Pipeline:
    """Parse a pipeline file and check its references; with a platform, also check the sites it names."""
    located = read_yaml(Path(path))
    pipeline = _validate(located, Pipeline)
    _check_inputs(pipeline, located)
    deps = step_dependencies({name: step.inputs for name, step in pipeline.steps.items()})
    cycle = find_cycle(deps)
    if cycle is not None:
        raise located.error(
            ("steps", cycle[0], "inputs"),
            f"the steps form a cycle: {' → '.join(cycle)}; a step cannot depend on its own outputs",
        )
    if platform is not None:
        _check_sites(pipeline, platform, located)
    return pipeline


def _validate(located: Located, model: type[_Model]) -> _Model:
    try:
        return model.model_validate(located.data)
    except ValidationError as exc:
        raise translate(exc, located, model) from None


def _check_inputs(pipeline: Pipeline, located: Located) -> None:
    for name, step in pipeline.steps.items():
        for i, ref in enumerate(step.inputs):
            producer, item = parse_input(ref)
            where = ("steps", name, "inputs", i)
            if producer is None:
                if item not in pipeline.datasets:
                    known = ", ".join(pipeline.datasets) or "none declared"
                    raise located.error(where, f"no dataset named {item!r}; datasets: {known}")
            elif producer not in pipeline.steps:
                raise located.error(where, f"no step named {producer!r}; steps: {', '.join(pipeline.steps)}")
            elif item not in pipeline.steps[producer].outputs:
                outputs = ", ".join(pipeline.steps[producer].outputs) or "none"
                raise located.error(
                    where, f"step {producer!r} has no output {item!r}; its outputs: {outputs}"
                )


def _check_sites(pipeline: Pipeline, platform: Platform, located: Located) -> None:
    known = ", ".join(platform.sites)

    def check(site: str, where: tuple[str | int, ...]) -> None:
        if site not in platform.sites:
            raise located.error(where, f"unknown site {site!r}; the platform's sites are: {known}")

    for name, dataset in pipeline.datasets.items():
        check(dataset.site, ("datasets", name, "site"))
        for i, site in enumerate(dataset.replicas):
            check(site, ("datasets", name, "replicas", i))
    if pipeline.replicate is not None:
        for i, site in enumerate(pipeline.replicate.sites):
            check(site, _replicate_item(located, ("replicate",), i))
    for name, step in pipeline.steps.items():
        for i, site in enumerate(step.replicate.sites):
            check(site, _replicate_item(located, ("steps", name, "replicate"), i))
        for i, site in enumerate(step.constraints.sites):
            check(site, ("steps", name, "constraints", "sites", i))
        if isinstance(step.sites, list):
            for i, site in enumerate(step.sites):
                check(site, ("steps", name, "sites", i))
        elif step.sites is not None and step.sites > len(platform.sites):
            raise located.error(
                ("steps", name, "sites"),
                f"asks for {step.sites} sites; the platform has {len(platform.sites)}: {known}",
            )


def _replicate_item(located: Located, base: tuple[str | int, ...], i: int) -> tuple[str | int, ...]:
    """Where the i-th replica site is written: ``replicate: [a, b]`` or ``replicate: {sites: [a, b]}``."""
    return (*base, i) if (*base, i) in located.positions else (*base, "sites", i)
