"""Open Inference Protocol (KServe V2) request parsing and validation, and the datatype mapping.

Everything a client sends passes through :func:`parse_infer_request`, which turns any malformed input into
a :class:`~stratus.errors.ServingError` with status 400 naming the tensor and what was expected, so that
bad input never reaches ONNX Runtime and never becomes a 5xx. It is pure (no I/O) so it can be fuzzed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from stratus.errors import ServingError

__all__ = [
    "DATATYPES",
    "InferRequest",
    "TensorSpec",
    "encode_outputs",
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
    """A validated inference request: numpy inputs keyed by name and the outputs to return (``None``: all)."""

    id: str | None
    inputs: dict[str, np.ndarray[Any, Any]]
    outputs: list[str] | None


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


def _parse_input(raw: Any, specs: Mapping[str, TensorSpec]) -> tuple[str, np.ndarray[Any, Any]]:
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
    if "data" not in raw:
        raise _bad(f"input {name!r}: 'data' is missing (binary tensor data is not supported; send JSON)")
    return name, _parse_data(name, raw["data"], spec.datatype, shape)


def _parse_outputs(raw: Any, output_names: Sequence[str]) -> list[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(o, dict) for o in raw):
        raise _bad("'outputs' must be a list of objects with a 'name'")
    names: list[str] = []
    for entry in raw:
        name = entry.get("name")
        if not isinstance(name, str) or name not in output_names:
            raise _bad(f"unknown output {name!r}: the model's outputs are {sorted(output_names)}")
        names.append(name)
    return names or None


def parse_infer_request(
    body: bytes, inputs: Sequence[TensorSpec], output_names: Sequence[str]
) -> InferRequest:
    """Validate a V2 infer body against the model's tensors; any client mistake is a 400 ServingError."""
    try:
        doc = orjson.loads(body)
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
    specs = {spec.name: spec for spec in inputs}
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for raw in raw_inputs:
        name, array = _parse_input(raw, specs)
        if name in arrays:
            raise _bad(f"input {name!r} is given twice")
        arrays[name] = array
    missing = sorted(set(specs) - set(arrays))
    if missing:
        raise _bad(f"missing inputs {missing}: the model needs {sorted(specs)}")
    return InferRequest(request_id, arrays, _parse_outputs(doc.get("outputs"), output_names))


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
