"""Open Inference Protocol (KServe V2) request parsing and validation, and the datatype mapping.

Everything a client sends passes through :func:`parse_infer_request`, which turns any malformed input into
a :class:`~stratus.errors.ServingError` with status 400 naming the tensor and what was expected, so that
bad input never reaches ONNX Runtime and never becomes a 5xx. Tensors come as JSON ``data`` or, with
the binary tensor data extension, as raw bytes after the JSON (:mod:`stratus.serving.binary`); answers
go back the way the request asks (:func:`encode_response`). Pure (no I/O), so it can be fuzzed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from stratus.errors import ServingError
from stratus.serving.binary import decode_tensor, encode_tensor, split_body

__all__ = [
    "DATATYPES",
    "InferRequest",
    "TensorSpec",
    "encode_outputs",
    "encode_response",
    "parse_infer_request",
]

# V2 datatype -> numpy dtype. BYTES travel as JSON strings and reach ORT as an object array of str.
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

# Which numpy kinds a JSON list may decode to for each V2 datatype family: ints are fine for floats,
# but strings, nulls and objects are not numbers, and a float is not an integer.
_ACCEPTED_KINDS = {"BOOL": "b", "INT": "iu", "UINT": "iu", "FP": "iuf", "BYTES": "U"}
_JSON_SHAPES = {
    "BOOL": "true/false",
    "INT": "integers",
    "UINT": "integers",
    "FP": "numbers",
    "BYTES": "strings",
}


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the protocol shows it: ``shape`` uses -1 for a variable dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def metadata(self) -> dict[str, Any]:
        """The tensor's entry in the V2 model metadata response."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class InferRequest:
    """A validated inference request: numpy inputs keyed by name, the outputs to return (``None``: all),
    and which of those to return as binary tensor data rather than JSON."""

    id: str | None
    inputs: dict[str, np.ndarray[Any, Any]]
    outputs: list[str] | None
    binary_outputs: frozenset[str] = frozenset()


def _bad(message: str) -> ServingError:
    return ServingError(message, status=400)


def _family(datatype: str) -> str:
    for family in ("UINT", "INT", "FP", "BOOL", "BYTES"):
        if datatype.startswith(family):
            return family
    raise AssertionError(datatype)  # pragma: no cover - DATATYPES only holds the names above


# Looked up once here rather than per request: the parser runs on the event loop for every request.
_FAMILIES = {datatype: _family(datatype) for datatype in DATATYPES}
_INT_RANGES = {
    datatype: (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    for datatype, dtype in DATATYPES.items()
    if _FAMILIES[datatype] in ("INT", "UINT")
}


def _parse_shape(name: str, raw: Any, spec: TensorSpec) -> tuple[int, ...]:
    # One plain loop: generator expressions cost microseconds that every request pays.
    if not isinstance(raw, list) or len(raw) != len(spec.shape):
        if not isinstance(raw, list) or not all(type(d) is int for d in raw):
            raise _bad(f"input {name!r}: 'shape' must be a list of integers, got {raw!r:.80}")
        if any(d < 0 for d in raw):
            raise _bad(f"input {name!r}: shape {raw} has a negative dimension")
        raise _bad(
            f"input {name!r}: shape {raw} does not match the model's {list(spec.shape)} (-1: any size)"
        )
    fits, negative = True, False
    for d, e in zip(raw, spec.shape, strict=True):
        if type(d) is not int:  # bool is a subclass of int, and not a dimension
            raise _bad(f"input {name!r}: 'shape' must be a list of integers, got {raw!r:.80}")
        negative = negative or d < 0
        fits = fits and e in (-1, d)
    if negative:
        raise _bad(f"input {name!r}: shape {raw} has a negative dimension")
    if not fits:
        raise _bad(
            f"input {name!r}: shape {raw} does not match the model's {list(spec.shape)} (-1: any size)"
        )
    return tuple(raw)


def _parse_data(name: str, raw: Any, datatype: str, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """Decode flat or nested row-major ``data`` into an array of ``shape``, rejecting wrong value types."""
    family = _FAMILIES[datatype]
    if not isinstance(raw, list):
        raise _bad(f"input {name!r}: 'data' must be a (flat or nested) list of {_JSON_SHAPES[family]}")
    count = math.prod(shape)
    try:
        array = np.asarray(raw)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise _bad(
            f"input {name!r}: 'data' must be a rectangular list of {_JSON_SHAPES[family]} ({exc})"
        ) from None
    if array.size != count:
        raise _bad(f"input {name!r}: 'data' has {array.size} values but shape {list(shape)} needs {count}")
    if count and array.dtype.kind not in _ACCEPTED_KINDS[family]:
        raise _bad(f"input {name!r}: datatype {datatype} needs {_JSON_SHAPES[family]} in 'data'")
    target = DATATYPES[datatype]
    if family in ("INT", "UINT") and count:
        low, high = _INT_RANGES[datatype]
        if int(array.min()) < low or int(array.max()) > high:
            raise _bad(f"input {name!r}: values must lie in [{low}, {high}] for {datatype}")
    if family == "FP" and count and target != np.float64:
        with np.errstate(over="ignore"):  # overflow is what this checks for, not a warning to print
            narrowed = array.astype(target)
        # All finite is the common case, checked in one call; only then is it worth finding out whether
        # a non-finite value was sent as such or came from narrowing an out-of-range one.
        if not np.isfinite(narrowed).all() and not np.isfinite(narrowed)[np.isfinite(array)].all():
            raise _bad(f"input {name!r}: a value is out of range for {datatype}")
        return narrowed.reshape(shape)
    return array.astype(target, copy=False).reshape(shape)


def _parameters(raw: Any, where: str) -> dict[str, Any]:
    parameters = raw.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise _bad(f"{where}: 'parameters' must be an object, got {type(parameters).__name__}")
    return parameters


def _binary_size(name: str, parameters: Mapping[str, Any]) -> int | None:
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:  # bool is an int subclass, and not a size
        raise _bad(f"input {name!r}: binary_data_size must be a non-negative integer, got {size!r:.40}")
    return size


def _parse_input(
    raw: Any, specs: Mapping[str, TensorSpec], binary: memoryview | None, offset: int
) -> tuple[str, np.ndarray[Any, Any], int]:
    """One input entry: its name, its array, and the binary bytes it took (from ``offset`` on)."""
    if not isinstance(raw, dict):
        raise _bad("each entry of 'inputs' must be an object with name, shape, datatype and data")
    name = raw.get("name")
    if not isinstance(name, str):
        raise _bad("an entry of 'inputs' has no string 'name'")
    spec = specs.get(name)
    if spec is None:
        raise _bad(f"unknown input {name!r}: the model's inputs are {sorted(specs)}")
    datatype = raw.get("datatype")
    if datatype != spec.datatype:
        raise _bad(f"input {name!r}: datatype {datatype!r} does not match the model's {spec.datatype}")
    shape = _parse_shape(name, raw.get("shape"), spec)
    size = _binary_size(name, _parameters(raw, f"input {name!r}"))
    if size is None:
        if "data" not in raw:
            raise _bad(f"input {name!r}: 'data' is missing (or parameters.binary_data_size for binary data)")
        return name, _parse_data(name, raw["data"], spec.datatype, shape), 0
    if "data" in raw:
        raise _bad(f"input {name!r}: give 'data' or parameters.binary_data_size, not both")
    if binary is None:
        raise _bad(
            f"input {name!r} has binary_data_size but the request has no Inference-Header-Content-Length "
            f"header saying where the JSON ends"
        )
    if offset + size > len(binary):
        raise _bad(
            f"input {name!r}: binary_data_size is {size} bytes but only {len(binary) - offset} bytes of "
            f"binary data are left after the JSON header"
        )
    return name, decode_tensor(name, spec.datatype, shape, binary[offset : offset + size]), size


def _flag(parameters: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = parameters.get(key, default)
    if type(value) is not bool:
        raise _bad(f"{where}: parameters.{key} must be true or false, got {value!r:.40}")
    return value


def _parse_outputs(
    raw: Any, output_names: Sequence[str], binary_default: bool
) -> tuple[list[str] | None, frozenset[str]]:
    """The asked outputs (None: all) and those to send as binary (each output's ``binary_data``, else the
    request's ``binary_data_output``)."""
    if raw is None or raw == []:
        return None, frozenset(output_names) if binary_default else frozenset()
    if not isinstance(raw, list) or not all(isinstance(o, dict) for o in raw):
        raise _bad("'outputs' must be a list of objects with a 'name'")
    names: list[str] = []
    binary: set[str] = set()
    for entry in raw:
        name = entry.get("name")
        if not isinstance(name, str) or name not in output_names:
            raise _bad(f"unknown output {name!r}: the model's outputs are {sorted(output_names)}")
        parameters = _parameters(entry, f"output {name!r}")
        if parameters.get("classification"):
            raise _bad(f"output {name!r}: the classification extension is not supported")
        if _flag(parameters, "binary_data", binary_default, f"output {name!r}"):
            binary.add(name)
        names.append(name)
    return names, frozenset(binary)


def parse_infer_request(
    body: bytes,
    inputs: Sequence[TensorSpec],
    output_names: Sequence[str],
    header_length: bytes | None = None,
) -> InferRequest:
    """Validate a V2 infer body against the model's tensors; any client mistake is a 400 ServingError.

    ``header_length`` is the raw ``Inference-Header-Content-Length`` value, when the request has one: the
    body is then that many bytes of JSON followed by the binary tensors, which must be used up exactly.
    """
    header, binary = split_body(body, header_length)
    try:
        doc = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _bad("request body must be a JSON object with an 'inputs' list")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _bad(f"'id' must be a string, got {type(request_id).__name__}")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise _bad("request body needs a non-empty 'inputs' list")
    binary_default = _flag(_parameters(doc, "request"), "binary_data_output", False, "request")
    specs = {spec.name: spec for spec in inputs}
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    for raw in raw_inputs:
        name, array, used = _parse_input(raw, specs, binary, offset)
        if name in arrays:
            raise _bad(f"input {name!r} is given twice")
        arrays[name] = array
        offset += used
    if binary is not None and offset != len(binary):
        raise _bad(
            f"{len(binary) - offset} bytes after the JSON header are not claimed by any input's "
            f"binary_data_size (the inputs take {offset} of {len(binary)})"
        )
    missing = sorted(set(specs) - set(arrays))
    if missing:
        raise _bad(f"missing inputs {missing}: the model needs {sorted(specs)}")
    outputs, binary_outputs = _parse_outputs(doc.get("outputs"), output_names, binary_default)
    return InferRequest(request_id, arrays, outputs, binary_outputs)


def encode_outputs(specs: Sequence[TensorSpec], arrays: Sequence[Any]) -> list[dict[str, Any]]:
    """V2 output entries with flat row-major data; BYTES become str so that JSON can carry them."""
    entries: list[dict[str, Any]] = []
    for spec, array in zip(specs, arrays, strict=True):
        values = np.asarray(array)
        data = values.ravel().tolist()
        if spec.datatype == "BYTES":
            data = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in data]
        entries.append(
            {"name": spec.name, "datatype": spec.datatype, "shape": list(values.shape), "data": data}
        )
    return entries


def encode_response(
    model_name: str,
    model_version: str,
    request: InferRequest,
    specs: Sequence[TensorSpec],
    arrays: Sequence[Any],
) -> tuple[bytes, int | None]:
    """The infer response body, and the JSON header's length when binary outputs follow it (else None).

    Outputs in ``request.binary_outputs`` carry ``parameters.binary_data_size`` instead of ``data``, and
    their bytes follow the JSON in the order of the entries; the others are JSON as before.
    """
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    binary = request.binary_outputs
    for spec, array in zip(specs, arrays, strict=True):
        if spec.name not in binary:
            entries.extend(encode_outputs([spec], [array]))
            continue
        values = np.asarray(array)
        data = encode_tensor(spec.datatype, values)
        chunks.append(data)
        entries.append(
            {
                "name": spec.name,
                "datatype": spec.datatype,
                "shape": list(values.shape),
                "parameters": {"binary_data_size": len(data)},
            }
        )
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": entries}
    if request.id is not None:
        response["id"] = request.id
    header = orjson.dumps(response)
    if not chunks:
        return header, None
    return b"".join((header, *chunks)), len(header)
