"""The binary tensor data extension of the V2 REST protocol (Triton's), as raw bytes <-> numpy.

Why: tritonclient sends tensors as raw bytes after the JSON header by default
(``InferInput.set_data_from_numpy(x)``), and asks for outputs the same way; JSON numbers cost far more to
write and parse than the bytes they stand for. The framing: the ``Inference-Header-Content-Length``
header gives the size of the JSON part of the body; each binary tensor's entry carries
``parameters.binary_data_size`` and its bytes follow the JSON in the order of the entries. Fixed-size
types are little-endian row-major; ``BYTES`` elements are each a 4-byte little-endian length and that
many bytes.

Every size is checked against what the shape and datatype need and against the bytes actually there,
so a lying client gets a 400 naming the tensor, never an over-read or a 5xx. Pure (no I/O): fuzzed.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from typing import Any

import numpy as np

from stratus.errors import ServingError

__all__ = [
    "HEADER",
    "decode_tensor",
    "encode_tensor",
    "header_length",
    "split_body",
]

#: The request and response header that gives the JSON part's size (lowercase, as ASGI and httptools
#: give header names).
HEADER = b"inference-header-content-length"

_LENGTH = struct.Struct("<I")

# Little-endian numpy dtype of each fixed-size V2 datatype (BYTES is variable-size, handled apart).
_WIRE: dict[str, np.dtype[Any]] = {
    name: np.dtype(code).newbyteorder("<")
    for name, code in (
        ("BOOL", np.bool_),
        ("INT8", np.int8),
        ("INT16", np.int16),
        ("INT32", np.int32),
        ("INT64", np.int64),
        ("UINT8", np.uint8),
        ("UINT16", np.uint16),
        ("UINT32", np.uint32),
        ("UINT64", np.uint64),
        ("FP16", np.float16),
        ("FP32", np.float32),
        ("FP64", np.float64),
    )
}


def _bad(message: str) -> ServingError:
    return ServingError(message, status=400)


def header_length(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The raw value of the request's ``Inference-Header-Content-Length``, or None when it has none."""
    for name, value in headers:
        if name == HEADER:
            return value
    return None


def split_body(body: bytes, raw_length: bytes | None) -> tuple[bytes, memoryview | None]:
    """The JSON header and the binary part of ``body`` (None when the header says the body is all JSON).

    The length must be a plain decimal byte count no larger than the body: no sign, no spaces, no hex.
    """
    if raw_length is None:
        return body, None
    if not raw_length.isdigit() or len(raw_length) > 19:
        raise _bad(
            f"Inference-Header-Content-Length is {raw_length[:40]!r}: expected the byte count of the JSON "
            f"header, from 0 to the body's {len(body)} bytes"
        )
    size = int(raw_length)
    if size > len(body):
        raise _bad(
            f"Inference-Header-Content-Length is {size} but the body has only {len(body)} bytes: the JSON "
            f"header cannot be longer than the body"
        )
    return body[:size], memoryview(body)[size:]


def decode_tensor(name: str, datatype: str, shape: tuple[int, ...], raw: memoryview) -> np.ndarray[Any, Any]:
    """The array of ``shape`` held in ``raw`` (exactly the tensor's bytes), or a 400 naming ``name``."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _decode_bytes(name, shape, count, raw)
    wire = _WIRE[datatype]
    needed = count * wire.itemsize
    if len(raw) != needed:
        raise _bad(
            f"input {name!r}: binary_data_size is {len(raw)} bytes but shape {list(shape)} of {datatype} "
            f"needs {needed} ({count} x {wire.itemsize})"
        )
    if datatype == "BOOL" and count and np.frombuffer(raw, np.uint8).max() > 1:
        raise _bad(f"input {name!r}: BOOL bytes must each be 0 or 1")
    # Read-only and sharing the body's memory: ORT only reads inputs, and the body outlives the call.
    return np.frombuffer(raw, wire, count).reshape(shape)


def _decode_bytes(name: str, shape: tuple[int, ...], count: int, raw: memoryview) -> np.ndarray[Any, Any]:
    size = len(raw)
    if count * _LENGTH.size > size:  # each element has at least its 4-byte length: no loop for a lie
        raise _bad(
            f"input {name!r}: shape {list(shape)} needs {count} BYTES elements, each with a 4-byte length, "
            f"but binary_data_size is only {size} bytes"
        )
    values: list[str] = []
    offset = 0
    for index in range(count):
        if offset + _LENGTH.size > size:
            raise _bad(f"input {name!r}: BYTES element {index} has no 4-byte length (the data ends)")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > size:
            raise _bad(
                f"input {name!r}: BYTES element {index} says {length} bytes but only {size - offset} remain"
            )
        try:
            values.append(str(raw[offset : offset + length], "utf-8"))
        except UnicodeDecodeError:
            # ONNX string tensors hold text; raw bytes that are not UTF-8 cannot reach the model.
            raise _bad(f"input {name!r}: BYTES element {index} is not valid UTF-8") from None
        offset += length
    if offset != size:
        raise _bad(
            f"input {name!r}: binary_data_size is {size} bytes but its {count} BYTES elements fill {offset}"
        )
    array = np.empty(count, dtype=object)
    array[:] = values
    return array.reshape(shape)


def encode_tensor(datatype: str, values: np.ndarray[Any, Any]) -> bytes:
    """The tensor's bytes on the wire: little-endian row-major, or length-prefixed UTF-8 for BYTES."""
    if datatype != "BYTES":
        return values.astype(_WIRE[datatype], copy=False).tobytes()
    parts: list[bytes] = []
    for value in values.ravel().tolist():
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)
