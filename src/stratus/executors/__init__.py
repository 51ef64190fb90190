"""Executors run one step somewhere and report how it ended; the runner decides everything else.

``local`` (a subprocess per step) and ``serverless`` (the same, with a function service's limits and
per-use price) are built in; ``kubernetes`` (a Job per step) and ``ray`` (a Ray job per step on an existing
cluster) are imported by :mod:`.registry` on use; each registers there by its ``compute.backend``.
"""

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
