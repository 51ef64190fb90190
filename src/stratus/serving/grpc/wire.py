"""Read one string field of a serialized protobuf message without decoding the message.

The gateway routes ModelInfer by ``model_name`` (field 1), and ModelReady and ModelMetadata by ``name``
(field 1 too), and passes the request bytes on unchanged: decoding a ModelInferRequest would copy every
tensor it carries only to serialize it again. Serializers write fields in number order, so field 1 is
nearly always the first thing in the message; the scan still skips any field that comes before it, as
the protobuf encoding allows any order.
"""

from __future__ import annotations

__all__ = ["WireError", "string_field"]

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message (or the field is not valid UTF-8)."""


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    """The varint at ``offset`` and the offset after it."""
    value = shift = 0
    while True:
        if offset >= len(data):
            raise WireError("message ends inside a varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def string_field(data: bytes, number: int) -> str:
    """The last value of string field ``number`` in ``data`` (protobuf's rule), or "" when absent."""
    found = ""
    offset = 0
    size = len(data)
    while offset < size:
        key, offset = _varint(data, offset)
        field, kind = key >> 3, key & 7
        if kind == _VARINT:
            _, offset = _varint(data, offset)
        elif kind == _I64:
            offset += 8
        elif kind == _I32:
            offset += 4
        elif kind == _LEN:
            length, offset = _varint(data, offset)
            end = offset + length
            if end > size:
                raise WireError(f"field {field} is longer than the message")
            if field == number:
                try:
                    found = data[offset:end].decode("utf-8")
                except UnicodeDecodeError:
                    raise WireError(f"field {field} is not valid UTF-8") from None
            offset = end
        else:  # groups (3, 4) are not used by this protocol; 6 and 7 are not wire types
            raise WireError(f"unsupported wire type {kind}")
        if offset > size:
            raise WireError("message ends inside a field")
    return found
