"""User-facing configuration: the platform file and the pipeline file, parsed strictly.

Names load on first use: finding the platform file (``resolve_platform_path``) must not import pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratus._lazy import lazy_names

if TYPE_CHECKING:
    from stratus.config.env import (
        PLATFORM_ENV,
    )
    from stratus.config.graph import (
        find_cycle,
        parse_input,
        step_dependencies,
        topological_order,
    )
    from stratus.config.loader import (
        load_pipeline,
        load_platform,
    )
    from stratus.config.locate import (
        resolve_platform_path,
    )
    from stratus.config.pipeline import (
        Constraints,
        DatasetSpec,
        OutputSpec,
        Pipeline,
        RegisterSpec,
        Resources,
        Step,
    )
    from stratus.config.platform import (
        Capacity,
        Compute,
        EgressOverride,
        InlineOffering,
        Platform,
        PolicySpec,
        RegistrySpec,
        ReservedSpec,
        ServerlessSpec,
        Site,
        StorageTimeouts,
        policy_path,
    )

__all__ = [
    "PLATFORM_ENV",
    "Capacity",
    "Compute",
    "Constraints",
    "DatasetSpec",
    "EgressOverride",
    "InlineOffering",
    "OutputSpec",
    "Pipeline",
    "Platform",
    "PolicySpec",
    "RegisterSpec",
    "RegistrySpec",
    "ReservedSpec",
    "Resources",
    "ServerlessSpec",
    "Site",
    "Step",
    "StorageTimeouts",
    "find_cycle",
    "load_pipeline",
    "load_platform",
    "parse_input",
    "policy_path",
    "resolve_platform_path",
    "step_dependencies",
    "topological_order",
]

# Public name → (module, attribute) it comes from; loaded on first use (stratus._lazy).
_SOURCES: dict[str, tuple[str, str]] = {
    "find_cycle": ("stratus.config.graph", "find_cycle"),
    "parse_input": ("stratus.config.graph", "parse_input"),
    "step_dependencies": ("stratus.config.graph", "step_dependencies"),
    "topological_order": ("stratus.config.graph", "topological_order"),
    "load_pipeline": ("stratus.config.loader", "load_pipeline"),
    "load_platform": ("stratus.config.loader", "load_platform"),
    "PLATFORM_ENV": ("stratus.config.env", "PLATFORM_ENV"),
    "resolve_platform_path": ("stratus.config.locate", "resolve_platform_path"),
    "Constraints": ("stratus.config.pipeline", "Constraints"),
    "DatasetSpec": ("stratus.config.pipeline", "DatasetSpec"),
    "OutputSpec": ("stratus.config.pipeline", "OutputSpec"),
    "Pipeline": ("stratus.config.pipeline", "Pipeline"),
    "RegisterSpec": ("stratus.config.pipeline", "RegisterSpec"),
    "Resources": ("stratus.config.pipeline", "Resources"),
    "Step": ("stratus.config.pipeline", "Step"),
    "Capacity": ("stratus.config.platform", "Capacity"),
    "Compute": ("stratus.config.platform", "Compute"),
    "EgressOverride": ("stratus.config.platform", "EgressOverride"),
    "InlineOffering": ("stratus.config.platform", "InlineOffering"),
    "Platform": ("stratus.config.platform", "Platform"),
    "PolicySpec": ("stratus.config.platform", "PolicySpec"),
    "RegistrySpec": ("stratus.config.platform", "RegistrySpec"),
    "ReservedSpec": ("stratus.config.platform", "ReservedSpec"),
    "ServerlessSpec": ("stratus.config.platform", "ServerlessSpec"),
    "Site": ("stratus.config.platform", "Site"),
    "StorageTimeouts": ("stratus.config.platform", "StorageTimeouts"),
    "policy_path": ("stratus.config.platform", "policy_path"),
}

__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
