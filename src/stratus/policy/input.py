"""The input documents, one shape per decision point (documented field by field in docs/policy.md).

Every document has ``decision`` (``plan``, ``run``, ``serve`` or ``repair``); ``run`` documents also have
``action`` (``start`` or ``copy``). Sites appear as :func:`site_doc`; residency as a sorted list of
jurisdictions (empty: the data may go anywhere). Money is a float in USD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from stratus.catalog import Offering
from stratus.config import Pipeline, Site, Step
from stratus.resources import Accelerator

__all__ = [
    "copy_doc",
    "offering_doc",
    "plan_doc",
    "repair_doc",
    "serve_doc",
    "site_doc",
    "start_doc",
    "step_doc",
]

Doc = dict[str, Any]


def _accelerator(value: Accelerator | None) -> Doc | None:
    return {"name": value.name, "count": value.count} if value is not None else None


def site_doc(name: str, site: Site) -> Doc:
    """``{name, provider, region, jurisdiction, continent, backend}``."""
    return {
        "name": name,
        "provider": site.provider,
        "region": site.region,
        "jurisdiction": site.jurisdiction,
        "continent": site.continent,
        "backend": site.compute.backend,
    }


def step_doc(name: str, step: Step) -> Doc:
    """``{name, kind, resources: {cpus, memory_gb, accelerators}, spot, estimated_hours, declassify}``."""
    return {
        "name": name,
        "kind": step.kind,
        "resources": {
            "cpus": step.resources.cpus,
            "memory_gb": step.resources.memory_gb,
            "accelerators": _accelerator(step.resources.accelerators),
        },
        "spot": step.spot,
        "estimated_hours": step.estimated_hours,
        "declassify": step.declassify,
    }


def offering_doc(offering: Offering) -> Doc:
    """``{name, vcpus, memory_gb, accelerator: {name, count} | null, source}``."""
    return {
        "name": offering.name,
        "vcpus": offering.vcpus,
        "memory_gb": offering.memory_gb,
        "accelerator": _accelerator(offering.accelerator),
        "source": offering.source,
    }


def _residency(bound: frozenset[str]) -> list[str]:
    return sorted(bound)


def plan_doc(
    pipeline: Pipeline,
    step: str,
    site: tuple[str, Site],
    offering: Offering,
    pricing: str,
    price: Decimal,
    residency: frozenset[str],
    inputs: Mapping[str, frozenset[str]],
) -> Doc:
    """One candidate of the planner: this step at this site on this offering at this pricing."""
    return {
        "decision": "plan",
        "pipeline": pipeline.name,
        "tags": dict(pipeline.tags),
        "step": step_doc(step, pipeline.steps[step]),
        "site": site_doc(*site),
        "offering": offering_doc(offering),
        "pricing": pricing,
        "price_per_hour_usd": float(price),
        "residency": _residency(residency),
        "inputs": [{"name": ref, "residency": _residency(bound)} for ref, bound in inputs.items()],
    }


def start_doc(
    pipeline: Pipeline,
    run_id: str,
    step: str,
    site: tuple[str, Site],
    offering: Offering | None,
    offering_name: str,
    pricing: str,
    price: Decimal,
    residency: frozenset[str],
) -> Doc:
    """A step about to start at a site (each machine of a multi-site step is asked about separately)."""
    shown = offering_doc(offering) if offering is not None else {"name": offering_name, "accelerator": None}
    return {
        "decision": "run",
        "action": "start",
        "run_id": run_id,
        "pipeline": pipeline.name,
        "tags": dict(pipeline.tags),
        "step": step_doc(step, pipeline.steps[step]),
        "site": site_doc(*site),
        "offering": shown,
        "pricing": pricing,
        "price_per_hour_usd": float(price),
        "residency": _residency(residency),
    }


def copy_doc(
    pipeline: Pipeline,
    run_id: str,
    *,
    artifact: str,
    sha256: str,
    residency: frozenset[str],
    source: tuple[str, Site] | None,
    target: tuple[str, Site],
    reason: str,
    step: str | None,
) -> Doc:
    """Bytes about to be copied between two sites by a run (an input staged, a replica written)."""
    return {
        "decision": "run",
        "action": "copy",
        "run_id": run_id,
        "pipeline": pipeline.name,
        "tags": dict(pipeline.tags),
        "step": step,
        "artifact": artifact,
        "sha256": sha256,
        "residency": _residency(residency),
        "from": site_doc(*source) if source is not None else None,
        "to": site_doc(*target),
        "reason": reason,
    }


def serve_doc(
    name: str, description: str, sha256: str, residency: frozenset[str], site: tuple[str, Site]
) -> Doc:
    """A model about to be served from a site."""
    return {
        "decision": "serve",
        "model": {
            "name": name,
            "description": description,
            "sha256": sha256,
            "residency": _residency(residency),
        },
        "site": site_doc(*site),
    }


def repair_doc(
    artifact: str, sha256: str, residency: frozenset[str], target: tuple[str, Site], sources: Sequence[str]
) -> Doc:
    """A replica about to be restored at ``target`` by `stratus storage repair` (or a run's first repair)."""
    return {
        "decision": "repair",
        "artifact": artifact,
        "sha256": sha256,
        "residency": _residency(residency),
        "to": site_doc(*target),
        "from": list(sources),
    }
