"""Executors run one step somewhere and report how it ended; the runner decides everything else.

``local`` (a subprocess per step) and ``serverless`` (the same, with a function service's limits and
per-use price) are built in; ``kubernetes`` (a Job per step) is imported by :mod:`.registry` on use.
"""

from stratus.executors.base import (
    Executor,
    FailureKind,
    Handle,
    StepRequest,
    StepResult,
    SupportsPreemption,
)
from stratus.executors.local import LocalExecutor
from stratus.executors.registry import BACKENDS, executor_for
from stratus.executors.serverless import PricedPerUse, ServerlessExecutor

__all__ = [
    "BACKENDS",
    "Executor",
    "FailureKind",
    "Handle",
    "LocalExecutor",
    "PricedPerUse",
    "ServerlessExecutor",
    "StepRequest",
    "StepResult",
    "SupportsPreemption",
    "executor_for",
]
