"""Training across sites: who this rank is, a process group that cannot hang, sync and lowcomm training,
and ONNX export proven equal to the model before it is published.

Importing ``stratus.training.cluster`` runs this file first, and the runner (which has no torch) does
exactly that to build each rank's environment. So only the torch-free names are imported here; the rest
load on first use (PEP 562), and ``from stratus.training import train`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stratus.training.cluster import Cluster, DistributedError

if TYPE_CHECKING:
    from stratus.training.ddp import process_group
    from stratus.training.lowcomm import TrainStats, train
    from stratus.training.onnx_export import (
        ExportError,
        ParityError,
        ParityReport,
        export_sklearn,
        export_torch,
    )

__all__ = [
    "Cluster",
    "DistributedError",
    "ExportError",
    "ParityError",
    "ParityReport",
    "TrainStats",
    "export_sklearn",
    "export_torch",
    "process_group",
    "train",
]

_NEEDS_TORCH = {
    "process_group": "stratus.training.ddp",
    "TrainStats": "stratus.training.lowcomm",
    "train": "stratus.training.lowcomm",
    "ExportError": "stratus.training.onnx_export",
    "ParityError": "stratus.training.onnx_export",
    "ParityReport": "stratus.training.onnx_export",
    "export_sklearn": "stratus.training.onnx_export",
    "export_torch": "stratus.training.onnx_export",
}


def __getattr__(name: str) -> Any:
    module = _NEEDS_TORCH.get(name)
    if module is None:
        raise AttributeError(f"module 'stratus.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value
