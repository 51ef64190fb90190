"""An ONNX Runtime runtime for MLServer 1.7.1, which ships none on PyPI; loaded only in MLServer's venv.

MLServer imports it by the ``implementation`` in model-settings.json (``mlserver_onnx.OnnxRuntime``, with
this folder on PYTHONPATH). The session is set up as ours is (same intra-op threads, passed in
``parameters.extra``; one inter-op thread; sequential), and tensors go through MLServer's own NumpyCodec,
so the comparison measures the servers, not the model.
"""

from __future__ import annotations

from typing import Any

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntime(MLModel):  # type: ignore[misc]  # MLServer is not installed where mypy runs
    """Runs an ONNX model with ONNX Runtime on CPU; every output the model has is returned."""

    async def load(self) -> bool:
        extra: dict[str, Any] = (self.settings.parameters.extra or {}) if self.settings.parameters else {}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(extra.get("intra_op_threads", 1))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        uri = await get_model_uri(self.settings)
        self._session = ort.InferenceSession(uri, options, providers=["CPUExecutionProvider"])
        self._outputs = [node.name for node in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {tensor.name: NumpyCodec.decode_input(tensor) for tensor in payload.inputs}
        arrays = self._session.run(self._outputs, feeds)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[
                NumpyCodec.encode_output(name, array)
                for name, array in zip(self._outputs, arrays, strict=True)
            ],
        )
