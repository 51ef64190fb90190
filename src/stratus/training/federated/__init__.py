"""Federated training with Flower under data residency: each site trains on its own data, only model
updates move.

:func:`run_federated` runs the Flower app in ``app/`` on the Deployment Engine (one SuperLink at the
coordinator, one SuperNode per site) and judges success by the ServerApp's own record, not by
``flwr run``'s exit code; :func:`local_baseline` trains the same model centrally for comparison.
"""

from stratus.training.federated.app.stratus_fl.model import LinearModel, TrainSettings
from stratus.training.federated.baseline import BaselineResult, local_baseline
from stratus.training.federated.runner import (
    APP_DIR,
    FederatedResult,
    RoundRecord,
    RunConfigValue,
    run_federated,
)

__all__ = [
    "APP_DIR",
    "BaselineResult",
    "FederatedResult",
    "LinearModel",
    "RoundRecord",
    "RunConfigValue",
    "TrainSettings",
    "local_baseline",
    "run_federated",
]
