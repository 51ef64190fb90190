"""Stratus: run machine-learning pipelines across several clouds as one system.

The public SDK. Everything a script needs is importable from here; submodules are implementation.

    from stratus import load_platform, load_pipeline, plan
    platform = load_platform("stratus.yaml")
    result = plan(load_pipeline("pipeline.yaml", platform), platform)
    print(result.total_cost_usd)
"""

from stratus.catalog import Catalog
from stratus.config import Pipeline, Platform, load_pipeline, load_platform
from stratus.errors import CatalogError, ConfigError, InfeasibleError, PlanError, StratusError
from stratus.planner import Plan, plan
from stratus.resources import Accelerator

__all__ = [
    "Accelerator",
    "Catalog",
    "CatalogError",
    "ConfigError",
    "InfeasibleError",
    "Pipeline",
    "Plan",
    "PlanError",
    "Platform",
    "StratusError",
    "load_pipeline",
    "load_platform",
    "plan",
]
