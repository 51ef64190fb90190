"""Run tritonclient.grpc, with its defaults, in a process of its own; print what it got as JSON.

Why a subprocess: tritonclient.grpc and kserve both register the protobuf package ``inference`` in
protobuf's default pool, and one process cannot load both; the test process already loads kserve (its
REST and gRPC tests). Usage: ``python grpc_triton_driver.py HOST:PORT < calls.json``, where each call is
``{"call": "infer", "model": "logit", "inputs": [{"name", "datatype", "shape", "data"}]}`` or one of
``live``, ``ready``, ``model_ready``, ``server_metadata``, ``model_metadata`` (with ``model``). Each answer
is ``{"value": ...}`` (outputs as ``{name: {"datatype", "shape", "data"}}``) or ``{"error": {"status",
"message"}}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException, triton_to_np_dtype


def _infer(client: triton.InferenceServerClient, call: dict[str, Any]) -> dict[str, Any]:
    inputs = []
    for spec in call["inputs"]:
        tensor = triton.InferInput(spec["name"], spec["shape"], spec["datatype"])
        dtype = object if spec["datatype"] == "BYTES" else triton_to_np_dtype(spec["datatype"])
        values = [v.encode() for v in spec["data"]] if spec["datatype"] == "BYTES" else spec["data"]
        tensor.set_data_from_numpy(np.array(values, dtype=dtype).reshape(spec["shape"]))
        inputs.append(tensor)
    result = client.infer(call["model"], inputs, request_id=call.get("id", ""))
    response = result.get_response()
    outputs = {}
    for output in response.outputs:
        array = result.as_numpy(output.name)
        data = [v.decode() for v in array.ravel()] if output.datatype == "BYTES" else array.ravel().tolist()
        outputs[output.name] = {"datatype": output.datatype, "shape": list(array.shape), "data": data}
    return {"id": response.id, "model_name": response.model_name, "outputs": outputs}


def run(client: triton.InferenceServerClient, call: dict[str, Any]) -> Any:
    kind = call["call"]
    if kind == "live":
        return client.is_server_live()
    if kind == "ready":
        return client.is_server_ready()
    if kind == "model_ready":
        return client.is_model_ready(call["model"])
    if kind == "server_metadata":
        return client.get_server_metadata(as_json=True)
    if kind == "model_metadata":
        return client.get_model_metadata(call["model"], as_json=True)
    return _infer(client, call)


def main() -> None:
    client = triton.InferenceServerClient(sys.argv[1])
    answers = []
    for call in json.load(sys.stdin):
        try:
            answers.append({"value": run(client, call)})
        except InferenceServerException as exc:
            answers.append({"error": {"status": exc.status(), "message": exc.message()}})
    client.close()
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
