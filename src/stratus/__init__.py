"""Stratus: run machine-learning pipelines across several clouds as one system.

The public SDK. Everything a script needs is importable from here; submodules are implementation.

    from stratus import load_platform, load_pipeline, plan, run
    platform = load_platform("stratus.yaml")
    result = plan(load_pipeline("pipeline.yaml", platform), platform)
    print(result.total_cost_usd)
    report = run("pipeline.yaml")        # executes it; state in .stratus/ beside stratus.yaml

Names load on first use (PEP 562): every step runs in a fresh ``python -m stratus.executors.worker``
process that needs only ``stratus.step``, and importing the whole SDK eagerly (planner, storage,
database) cost each step about 1.5 s of start-up on a 2-core machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratus._lazy import lazy_names

if TYPE_CHECKING:
    from stratus.catalog import Catalog
    from stratus.config import Pipeline, Platform, load_pipeline, load_platform
    from stratus.errors import CatalogError, ConfigError, InfeasibleError, PlanError, StratusError
    from stratus.planner import Plan, plan
    from stratus.resources import Accelerator
    from stratus.runner import run_file as run
    from stratus.step import StepContext

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
    "StepContext",
    "StratusError",
    "load_pipeline",
    "load_platform",
    "plan",
    "run",
]

# Public name → (module, attribute) it comes from.
_SOURCES: dict[str, tuple[str, str]] = {
    "Accelerator": ("stratus.resources", "Accelerator"),
    "Catalog": ("stratus.catalog", "Catalog"),
    "CatalogError": ("stratus.errors", "CatalogError"),
    "ConfigError": ("stratus.errors", "ConfigError"),
    "InfeasibleError": ("stratus.errors", "InfeasibleError"),
    "Pipeline": ("stratus.config", "Pipeline"),
    "Plan": ("stratus.planner", "Plan"),
    "PlanError": ("stratus.errors", "PlanError"),
    "Platform": ("stratus.config", "Platform"),
    "StepContext": ("stratus.step", "StepContext"),
    "StratusError": ("stratus.errors", "StratusError"),
    "load_pipeline": ("stratus.config", "load_pipeline"),
    "load_platform": ("stratus.config", "load_platform"),
    "plan": ("stratus.planner", "plan"),
    "run": ("stratus.runner", "run_file"),
}


__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
