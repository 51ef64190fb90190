"""Run state in one SQLAlchemy database: runs, steps, artifacts, replicas, transfers, ledger rows.

Names load on first use: finding the state folder (``state_dir``) must not import SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratus._lazy import lazy_names

if TYPE_CHECKING:
    from stratus.state.db import (
        Base,
        Database,
        UtcDateTime,
        open_database,
    )
    from stratus.state.location import (
        STATE_DIRNAME,
        STATE_URL_ENV,
        default_url,
        state_dir,
        state_url,
    )
    from stratus.state.locks import (
        Holder,
        LockRow,
        Locks,
    )
    from stratus.state.measured import (
        MeasuredSize,
        last_output_sizes,
    )
    from stratus.state.models import (
        ArtifactName,
        ArtifactRow,
        CancelRow,
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
    from stratus.state.repo import (
        DONE,
        Repository,
    )

__all__ = [
    "DONE",
    "STATE_DIRNAME",
    "STATE_URL_ENV",
    "ArtifactName",
    "ArtifactRow",
    "Base",
    "CancelRow",
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

# Public name → (module, attribute) it comes from; loaded on first use (stratus._lazy).
_SOURCES: dict[str, tuple[str, str]] = {
    "MeasuredSize": ("stratus.state.measured", "MeasuredSize"),
    "last_output_sizes": ("stratus.state.measured", "last_output_sizes"),
    "Base": ("stratus.state.db", "Base"),
    "Database": ("stratus.state.db", "Database"),
    "UtcDateTime": ("stratus.state.db", "UtcDateTime"),
    "open_database": ("stratus.state.db", "open_database"),
    "STATE_DIRNAME": ("stratus.state.location", "STATE_DIRNAME"),
    "STATE_URL_ENV": ("stratus.state.location", "STATE_URL_ENV"),
    "default_url": ("stratus.state.location", "default_url"),
    "state_dir": ("stratus.state.location", "state_dir"),
    "state_url": ("stratus.state.location", "state_url"),
    "Holder": ("stratus.state.locks", "Holder"),
    "LockRow": ("stratus.state.locks", "LockRow"),
    "Locks": ("stratus.state.locks", "Locks"),
    "ArtifactName": ("stratus.state.models", "ArtifactName"),
    "ArtifactRow": ("stratus.state.models", "ArtifactRow"),
    "CancelRow": ("stratus.state.models", "CancelRow"),
    "DatasetRow": ("stratus.state.models", "DatasetRow"),
    "ReplicaRow": ("stratus.state.models", "ReplicaRow"),
    "ReplicaState": ("stratus.state.models", "ReplicaState"),
    "RunRow": ("stratus.state.models", "RunRow"),
    "RunStatus": ("stratus.state.models", "RunStatus"),
    "StepRunRow": ("stratus.state.models", "StepRunRow"),
    "StepStatus": ("stratus.state.models", "StepStatus"),
    "TransferRow": ("stratus.state.models", "TransferRow"),
    "utcnow": ("stratus.state.models", "utcnow"),
    "DONE": ("stratus.state.repo", "DONE"),
    "Repository": ("stratus.state.repo", "Repository"),
}

__getattr__, __dir__ = lazy_names(__name__, _SOURCES)
