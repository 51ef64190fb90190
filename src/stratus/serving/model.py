"""An ONNX Runtime session with the V2 metadata the protocol shows for it.

ONNX Runtime's own exceptions are translated here, where they enter our code: a model that cannot load
is a 500-class :class:`~stratus.errors.ServingError`, an argument ORT rejects at run time is a 400.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from stratus.errors import ServingError
from stratus.serving.protocol import TensorSpec

__all__ = ["Model", "default_intra_op_threads"]

_ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


# V2 datatype -> Triton model configuration data_type (BYTES is TYPE_STRING there).
_CONFIG_TYPES = {name: "TYPE_STRING" if name == "BYTES" else f"TYPE_{name}" for name in _ORT_TYPES.values()}


def default_intra_op_threads(cpus: int | None = None) -> int:
    """Threads per ORT call: 1 on two cores or fewer, where the event loop needs the other core, else half."""
    count = cpus if cpus is not None else (os.cpu_count() or 1)
    return 1 if count <= 2 else count // 2


def _spec(model: str, node: Any) -> TensorSpec:
    datatype = _ORT_TYPES.get(node.type)
    if datatype is None:
        raise ServingError(
            f"model {model!r}: tensor {node.name!r} has type {node.type}, which the V2 protocol cannot carry",
            status=500,
        )
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in node.shape)
    return TensorSpec(node.name, datatype, shape)


class Model:
    """One loaded ONNX model; ``run`` is thread-safe, as ORT sessions are.

    ``version`` is what V2 answers name as ``model_version`` ("1" unless told): a deployment of a
    registered model passes the registry's version number, so a client sees which version answered.
    """

    platform = "onnxruntime_onnx"

    def __init__(
        self, name: str, path: Path, *, intra_op_threads: int | None = None, version: str = "1"
    ) -> None:
        self.name = name
        self.path = path
        self.version = version
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads or default_intra_op_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own untyped errors for missing or corrupt files
            raise ServingError(f"model {name!r}: cannot load {path}: {exc}", status=500) from exc
        self.inputs = [_spec(name, node) for node in self._session.get_inputs()]
        self.outputs = [_spec(name, node) for node in self._session.get_outputs()]
        self.output_names = [spec.name for spec in self.outputs]

    def metadata(self) -> dict[str, Any]:
        """The V2 model metadata response body."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [spec.metadata() for spec in self.inputs],
            "outputs": [spec.metadata() for spec in self.outputs],
        }

    def config(self) -> dict[str, Any]:
        """The model's configuration in the shape of Triton's model configuration extension.

        ``max_batch_size`` is 0, so ``dims`` are the whole shape, batch dimension included (-1: any
        size): requests are micro-batched inside the server, never by the client's reading of this.
        """
        return {
            "name": self.name,
            "platform": self.platform,
            "backend": "onnxruntime",
            "version_policy": {"latest": {"num_versions": 1}},
            "max_batch_size": 0,
            "input": [
                {
                    "name": s.name,
                    "data_type": _CONFIG_TYPES[s.datatype],
                    "format": "FORMAT_NONE",
                    "dims": list(s.shape),
                }
                for s in self.inputs
            ],
            "output": [
                {"name": s.name, "data_type": _CONFIG_TYPES[s.datatype], "dims": list(s.shape)}
                for s in self.outputs
            ],
            "instance_group": [{"name": self.name, "kind": "KIND_CPU", "count": 1}],
            "default_model_filename": self.path.name,
        }

    def run(
        self, inputs: dict[str, np.ndarray[Any, Any]], outputs: Sequence[str] | None
    ) -> tuple[list[TensorSpec], list[Any]]:
        """Run one request; returns specs and arrays of the asked outputs (all when ``outputs`` is None)."""
        specs = self.outputs if outputs is None else [s for n in outputs for s in self.outputs if s.name == n]
        try:
            arrays = self._session.run([s.name for s in specs], inputs)
        except ort.capi.onnxruntime_pybind11_state.InvalidArgument as exc:
            raise ServingError(f"model {self.name!r} rejected the inputs: {exc}", status=400) from exc
        except Exception as exc:  # any other ORT failure is ours, not the client's
            raise ServingError(f"model {self.name!r} failed to run: {exc}", status=500) from exc
        return specs, list(arrays)
