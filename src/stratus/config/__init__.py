"""User-facing configuration: the platform file and the pipeline file, parsed strictly."""

from stratus.config.graph import find_cycle, parse_input, step_dependencies, topological_order
from stratus.config.loader import load_pipeline, load_platform, resolve_platform_path
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
