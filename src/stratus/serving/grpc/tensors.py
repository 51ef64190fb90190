"""ModelInferRequest tensors to numpy and numpy to ModelInferResponse tensors, validated like REST.

Every check that the REST protocol makes is made by the same code (:mod:`stratus.serving.protocol`), so a
client mistake gets the same message over gRPC as over HTTP: unknown input, wrong datatype, a shape that
does not match the model, a value count that does not match the shape, an integer out of its type's
range. What is gRPC's own is checked here: the bytes of ``raw_input_contents`` (little-endian, BYTES as a
4-byte length before each element) and which typed ``contents`` field a datatype uses.

Answers always carry ``raw_output_contents`` (what Triton does, and the only form tritonclient.grpc
reads for non-BYTES outputs); kserve's client reads it too.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

# The REST parser's own checks, reused so that both protocols answer the same messages.
from stratus.serving.protocol import (
    DATATYPES,
    TensorSpec,
    _bad,
    _parse_data,
    _parse_outputs,
    _parse_shape,
)

from . import grpc_predict_v2_pb2 as pb

__all__ = ["CONTENTS_FIELD", "decode_bytes", "encode_bytes", "encode_response", "parse_request"]

Arrays = dict[str, np.ndarray[Any, Any]]

#: The ``InferTensorContents`` field that carries each datatype's values (FP16 has none: raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_LENGTH = struct.Struct("<I")
# Raw tensor bytes are little-endian whatever the machine.
_RAW_DTYPES = {name: dtype.newbyteorder("<") for name, dtype in DATATYPES.items() if name != "BYTES"}


def decode_bytes(name: str, raw: bytes, count: int) -> list[str]:
    """A raw BYTES tensor (each element: 4-byte little-endian length, then its bytes) as ``count`` str."""
    values: list[str] = []
    view = memoryview(raw)
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise _bad(f"input {name!r}: raw BYTES data ends inside an element's 4-byte length")
        (size,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + size > len(view):
            raise _bad(f"input {name!r}: raw BYTES element {len(values)} is longer than the data left")
        try:
            values.append(str(view[offset : offset + size], "utf-8"))
        except UnicodeDecodeError:
            raise _bad(f"input {name!r}: BYTES element {len(values)} is not valid UTF-8") from None
        offset += size
    if len(values) != count:
        raise _bad(f"input {name!r}: raw data has {len(values)} BYTES elements but the shape needs {count}")
    return values


def encode_bytes(values: Any) -> bytes:
    """Serialize a BYTES tensor the raw way: each element's UTF-8 length (4 bytes, LE), then the bytes."""
    parts: list[bytes] = []
    for value in np.asarray(values).ravel().tolist():
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def _raw_input(name: str, raw: bytes, spec: TensorSpec, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    count = math.prod(shape)
    if spec.datatype == "BYTES":
        return np.array(decode_bytes(name, raw, count), dtype=object).reshape(shape)
    dtype = _RAW_DTYPES[spec.datatype]
    needed = count * dtype.itemsize
    if len(raw) != needed:
        raise _bad(
            f"input {name!r}: raw_input_contents holds {len(raw)} bytes but shape {list(shape)} "
            f"of {spec.datatype} needs {needed}"
        )
    return np.frombuffer(raw, dtype=dtype).astype(DATATYPES[spec.datatype], copy=False).reshape(shape)


def _typed_input(
    name: str, tensor: pb.ModelInferRequest.InferInputTensor, spec: TensorSpec, shape: tuple[int, ...]
) -> np.ndarray[Any, Any]:
    field = CONTENTS_FIELD.get(spec.datatype)
    if field is None:
        raise _bad(f"input {name!r}: {spec.datatype} has no typed contents; send it in raw_input_contents")
    contents = tensor.contents
    for other in set(CONTENTS_FIELD.values()) - {field}:
        if len(getattr(contents, other)):
            raise _bad(f"input {name!r}: datatype {spec.datatype} takes its values in contents.{field}")
    values: list[Any] = list(getattr(contents, field))
    if spec.datatype == "BYTES":
        try:
            values = [value.decode("utf-8") for value in values]
        except UnicodeDecodeError:
            raise _bad(f"input {name!r}: a BYTES element is not valid UTF-8") from None
    return _parse_data(name, values, spec.datatype, shape)


def parse_request(
    request: pb.ModelInferRequest, inputs: Sequence[TensorSpec], output_names: Sequence[str]
) -> tuple[Arrays, list[str] | None]:
    """The request's inputs as numpy arrays and its asked outputs (None: all); a mistake is a 400."""
    if not request.inputs:
        raise _bad("request needs a non-empty 'inputs' list")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise _bad(
            f"raw_input_contents has {len(raw)} entries but the request has {len(request.inputs)} inputs: "
            "send every input raw, or none"
        )
    specs = {spec.name: spec for spec in inputs}
    arrays: Arrays = {}
    for index, tensor in enumerate(request.inputs):
        name = tensor.name
        spec = specs.get(name)
        if spec is None:
            raise _bad(f"unknown input {name!r}: the model's inputs are {sorted(specs)}")
        if tensor.datatype != spec.datatype:
            raise _bad(
                f"input {name!r}: datatype {tensor.datatype!r} does not match the model's {spec.datatype}"
            )
        shape = _parse_shape(name, list(tensor.shape), spec)
        if name in arrays:
            raise _bad(f"input {name!r} is given twice")
        if raw:
            if tensor.HasField("contents"):
                raise _bad(f"input {name!r}: has contents although the request sends raw_input_contents")
            arrays[name] = _raw_input(name, raw[index], spec, shape)
        else:
            arrays[name] = _typed_input(name, tensor, spec, shape)
    missing = sorted(set(specs) - set(arrays))
    if missing:
        raise _bad(f"missing inputs {missing}: the model needs {sorted(specs)}")
    outputs = [{"name": output.name} for output in request.outputs] if request.outputs else None
    asked, _binary = _parse_outputs(outputs, output_names, False)  # gRPC answers are always raw bytes
    return arrays, asked


def encode_response(
    model: str, version: str, request_id: str, specs: Sequence[TensorSpec], arrays: Sequence[Any]
) -> pb.ModelInferResponse:
    """The answer with every output in ``raw_output_contents`` (little-endian; BYTES length-prefixed)."""
    response = pb.ModelInferResponse(model_name=model, model_version=version, id=request_id)
    for spec, array in zip(specs, arrays, strict=True):
        values = np.asarray(array)
        response.outputs.add(name=spec.name, datatype=spec.datatype, shape=values.shape)
        if spec.datatype == "BYTES":
            response.raw_output_contents.append(encode_bytes(values))
        else:
            data = values.astype(_RAW_DTYPES[spec.datatype], copy=False)
            response.raw_output_contents.append(np.ascontiguousarray(data).tobytes())
    return response
