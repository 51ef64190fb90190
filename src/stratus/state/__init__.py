"""Run state in one SQLAlchemy database: runs, steps, artifacts, replicas, transfers, ledger rows."""

from stratus.state.db import Base, Database, UtcDateTime, default_url, open_database
from stratus.state.location import STATE_DIRNAME, STATE_URL_ENV, state_dir, state_url
from stratus.state.locks import Holder, LockRow, Locks
from stratus.state.measured import MeasuredSize, last_output_sizes
from stratus.state.models import (
    ArtifactName,
    ArtifactRow,
    DatasetRow,
    ReplicaRow,
    ReplicaState,
    RunRow,
    RunStatus,
    StepRunRow,
    StepStatus,
    TransferRow,
    utcnow,
)
from stratus.state.repo import DONE, Repository

__all__ = [
    "DONE",
    "STATE_DIRNAME",
    "STATE_URL_ENV",
    "ArtifactName",
    "ArtifactRow",
    "Base",
    "Database",
    "DatasetRow",
    "Holder",
    "LockRow",
    "Locks",
    "MeasuredSize",
    "ReplicaRow",
    "ReplicaState",
    "Repository",
    "RunRow",
    "RunStatus",
    "StepRunRow",
    "StepStatus",
    "TransferRow",
    "UtcDateTime",
    "default_url",
    "last_output_sizes",
    "open_database",
    "state_dir",
    "state_url",
    "utcnow",
]
