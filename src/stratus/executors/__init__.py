"""Executors run one step somewhere and report how it ended; the runner decides everything else.

``local`` (a subprocess per step) and ``serverless`` (the same, with a function service's limits and
per-use price) are built in; ``kubernetes`` (a Job per step) and ``ray`` (a Ray job per step on an existing
cluster) are imported by :mod:`.registry` on use; each registers there by its ``compute.backend``.

Names load on first use (PEP 562): every step runs in a fresh ``python -m stratus.executors.worker``,
which imports this package first: eager imports here cost each step about 0.3 s of CPU (pydantic, the
config models and every executor) before its own code starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratus._lazy import lazy_names

if TYPE_CHECKING:
    from stratus.executors.base import (
        Executor,
        FailureKind,
        Handle,
        StepRequest,
        StepResult,
        SupportsGangs,
        SupportsPreemption,
        SupportsProbe,
    )
    from stratus.executors.local import LocalExecutor
    from stratus.executors.ray_jobs import RayExecutor
    from stratus.executors.registry import BACKENDS, executor_for
    from stratus.executors.serverless import PricedPerUse, ServerlessExecutor

__all__ = [
    "BACKENDS",
    "Executor",
    "FailureKind",
    "Handle",
    "LocalExecutor",
    "PricedPerUse",
    "RayExecutor",
    "ServerlessExecutor",
    "StepRequest",
    "StepResult",
    "SupportsGangs",
    "SupportsPreemption",
    "SupportsProbe",
    "executor_for",
]

# Public name → (module, attribute) it comes from.
_SOURCES: dict[str, tuple[str, str]] = {
    "BACKENDS": ("stratus.executors.registry", "BACKENDS"),
    "Executor": ("stratus.executors.base", "Executor"),
    "executor_for": ("stratus.executors.registry", "executor_for"),
    "FailureKind": ("stratus.executors.base", "FailureKind"),
    "Handle": ("stratus.executors.base", "Handle"),
    "LocalExecutor": ("stratus.executors.local", "LocalExecutor"),
    "PricedPerUse": ("stratus.executors.serverless", "PricedPerUse"),
    "RayExecutor": ("stratus.executors.ray_jobs", "RayExecutor"),
    "ServerlessExecutor": ("stratus.executors.serverless", "ServerlessExecutor"),
    "StepRequest": ("stratus.executors.base", "StepRequest"),
    "StepResult": ("stratus.executors.base", "StepResult"),
    "SupportsGangs": ("stratus.executors.base", "SupportsGangs"),
    "SupportsPreemption": ("stratus.executors.base", "SupportsPreemption"),
    "SupportsProbe": ("stratus.executors.base", "SupportsProbe"),
}

__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
