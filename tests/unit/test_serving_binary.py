"""The binary tensor data extension in-process: round trips, every framing error a 400 naming the tensor,
and the parser fuzzed with lying sizes, headers and bytes (the only error ever is a 400)."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratus.errors import ServingError
from stratus.serving.binary import decode_tensor, encode_tensor
from stratus.serving.protocol import (
    DATATYPES,
    InferRequest,
    TensorSpec,
    encode_response,
    parse_infer_request,
)

SPECS = [
    TensorSpec("x", "FP32", (-1, 3)),
    TensorSpec("text", "BYTES", (-1,)),
    TensorSpec("flag", "BOOL", (-1,)),
]
OUTPUTS = ["y", "z"]


def framed(entries: list[dict[str, Any]], chunks: list[bytes], **doc: Any) -> tuple[bytes, bytes]:
    """A binary request body and its Inference-Header-Content-Length value."""
    header = orjson.dumps({"inputs": entries, **doc})
    return header + b"".join(chunks), str(len(header)).encode()


def entry(name: str, datatype: str, shape: list[int], size: int) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": size}}


def strings(*values: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def valid() -> tuple[bytes, bytes, np.ndarray[Any, Any]]:
    x = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    text = strings(b"a", "h\u00e9".encode())
    body, length = framed(
        [
            entry("x", "FP32", [2, 3], 24),
            entry("text", "BYTES", [2], len(text)),
            entry("flag", "BOOL", [3], 3),
        ],
        [x.tobytes(), text, b"\x01\x00\x01"],
    )
    return body, length, x


def test_binary_inputs_decode_exactly() -> None:
    body, length, x = valid()
    request = parse_infer_request(body, SPECS, OUTPUTS, length)
    np.testing.assert_array_equal(request.inputs["x"], x)
    assert request.inputs["x"].dtype == np.float32
    assert request.inputs["text"].tolist() == ["a", "h\u00e9"]
    assert request.inputs["flag"].tolist() == [True, False, True]
    assert request.binary_outputs == frozenset()


def test_json_and_binary_inputs_mix_and_outputs_follow_the_parameters() -> None:
    text = strings(b"q")
    body, length = framed(
        [
            {"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]},
            entry("text", "BYTES", [1], len(text)),
            {"name": "flag", "datatype": "BOOL", "shape": [1], "data": [False]},
        ],
        [text],
        parameters={"binary_data_output": True},
        outputs=[{"name": "y"}, {"name": "z", "parameters": {"binary_data": False}}],
    )
    request = parse_infer_request(body, SPECS, OUTPUTS, length)
    assert request.inputs["text"].tolist() == ["q"]
    assert (request.outputs, request.binary_outputs) == (["y", "z"], frozenset({"y"}))
    # No outputs named: binary_data_output applies to all of them.
    body, length = framed(
        [entry("x", "FP32", [0, 3], 0), entry("text", "BYTES", [0], 0), entry("flag", "BOOL", [0], 0)],
        [],
        parameters={"binary_data_output": True},
    )
    request = parse_infer_request(body, SPECS, OUTPUTS, length)
    assert (request.outputs, request.binary_outputs) == (None, frozenset(OUTPUTS))
    assert request.inputs["x"].shape == (0, 3)


def test_a_response_with_binary_outputs_is_json_then_bytes() -> None:
    request = InferRequest("r-1", {}, ["y", "z"], frozenset({"z"}))
    specs = [TensorSpec("y", "FP16", (-1,)), TensorSpec("z", "BYTES", (-1,))]
    y = np.array([1.5, -2.0], np.float16)
    z = np.array(["ok", "\u00e9"], dtype=object)
    answer, json_length = encode_response("m", "1", request, specs, [y, z])
    assert json_length is not None
    header = orjson.loads(answer[:json_length])
    assert (header["model_name"], header["model_version"], header["id"]) == ("m", "1", "r-1")
    assert header["outputs"] == [
        {"name": "y", "datatype": "FP16", "shape": [2], "data": [1.5, -2.0]},
        {"name": "z", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 4 + 2 + 4 + 2}},
    ]
    assert answer[json_length:] == strings(b"ok", "\u00e9".encode())
    # Nothing binary asked: plain JSON and no header length, as before the extension.
    plain, none = encode_response("m", "1", InferRequest(None, {}, None), specs, [y, z])
    assert none is None
    assert orjson.loads(plain)["outputs"][1]["data"] == ["ok", "\u00e9"]


@pytest.mark.parametrize("datatype", [d for d in DATATYPES if d != "BYTES"])
def test_every_fixed_size_datatype_round_trips(datatype: str) -> None:
    values = (np.arange(12) % 2).astype(DATATYPES[datatype]).reshape(3, 4)
    raw = encode_tensor(datatype, values)
    assert len(raw) == values.nbytes
    decoded = decode_tensor("t", datatype, (3, 4), memoryview(raw))
    np.testing.assert_array_equal(decoded, values)
    assert decoded.dtype == DATATYPES[datatype]


def _fails(body: bytes, length: bytes | None, specs: list[TensorSpec] = SPECS) -> str:
    with pytest.raises(ServingError) as info:
        parse_infer_request(body, specs, OUTPUTS, length)
    assert info.value.status == 400
    return str(info.value)


X_ONLY = [SPECS[0]]


@pytest.mark.parametrize(
    ("entries", "chunks", "message"),
    [
        (
            [entry("x", "FP32", [1, 3], 8)],
            [b"\0" * 8],
            "input 'x': binary_data_size is 8 bytes but shape [1, 3] of FP32 needs 12 (3 x 4)",
        ),
        (
            [entry("x", "FP32", [1, 3], 12)],
            [b"\0" * 8],
            "input 'x': binary_data_size is 12 bytes but only 8 bytes of binary data are left",
        ),
        ([entry("x", "FP32", [1, 3], 12)], [b"\0" * 16], "4 bytes after the JSON header are not claimed"),
        ([entry("x", "FP32", [1, 3], -12)], [b"\0" * 12], "binary_data_size must be a non-negative integer"),
        ([entry("x", "FP32", [1, 3], True)], [b"\0"], "binary_data_size must be a non-negative integer"),
        (
            [{**entry("x", "FP32", [1, 3], 12), "data": [1, 2, 3]}],
            [b"\0" * 12],
            "input 'x': give 'data' or parameters.binary_data_size, not both",
        ),
        (
            [{"name": "x", "datatype": "FP32", "shape": [1, 3], "parameters": 5}],
            [],
            "input 'x': 'parameters' must be an object",
        ),
        (
            [entry("x", "FP32", [10**15, 3], 12)],
            [b"\0" * 12],
            "shape [1000000000000000, 3] of FP32 needs 12000000000000000",
        ),
    ],
)
def test_framing_errors_name_the_tensor(
    entries: list[dict[str, Any]], chunks: list[bytes], message: str
) -> None:
    body, length = framed(entries, chunks)
    assert message in _fails(body, length, X_ONLY)


@pytest.mark.parametrize(
    ("payload", "shape", "message"),
    [
        (strings(b"a")[:3], [1], "shape [1] needs 1 BYTES elements, each with a 4-byte length"),
        (struct.pack("<I", 9) + b"abc", [1], "BYTES element 0 says 9 bytes but only 3 remain"),
        (strings(b"abcde") + b"\0\0", [2], "BYTES element 1 has no 4-byte length"),
        (strings(b"a", b"b") + b"zz", [2], "binary_data_size is 12 bytes but its 2 BYTES elements fill 10"),
        (strings(b"\xff\xfe"), [1], "BYTES element 0 is not valid UTF-8"),
        (strings(*[b""] * 3), [10**9], "shape [1000000000] needs 1000000000 BYTES elements"),
    ],
)
def test_bytes_framing_errors_name_the_tensor(payload: bytes, shape: list[int], message: str) -> None:
    body, length = framed([entry("text", "BYTES", shape, len(payload))], [payload])
    error = _fails(body, length, [SPECS[1]])
    assert error.startswith("input 'text': ")
    assert message in error


def test_bool_bytes_must_be_0_or_1() -> None:
    body, length = framed([entry("flag", "BOOL", [2], 2)], [b"\x01\x02"])
    assert _fails(body, length, [SPECS[2]]) == "input 'flag': BOOL bytes must each be 0 or 1"


@pytest.mark.parametrize(
    ("length", "message"),
    [
        (b"-5", "Inference-Header-Content-Length is b'-5': expected the byte count of the JSON header"),
        (b"12x", "Inference-Header-Content-Length is b'12x'"),
        (b" 12", "Inference-Header-Content-Length is b' 12'"),
        (b"", "Inference-Header-Content-Length is b''"),
        (b"9" * 40, "Inference-Header-Content-Length is b'9999"),
        (b"100000", "Inference-Header-Content-Length is 100000 but the body has only"),
    ],
)
def test_bad_header_lengths_are_400(length: bytes, message: str) -> None:
    body, _, _ = valid()
    assert message in _fails(body, length)


def test_binary_size_without_the_header_and_json_cut_short() -> None:
    body, length, _ = valid()
    assert "has no Inference-Header-Content-Length header" in _fails(
        orjson.dumps({"inputs": [entry("x", "FP32", [1, 3], 12)]}), None, X_ONLY
    )
    assert "request body is not valid JSON" in _fails(body, str(int(length) - 1).encode())


def test_output_parameters_are_checked() -> None:
    body, length, _ = valid()
    header = orjson.loads(body[: int(length)])
    for outputs, message in [
        ([{"name": "y", "parameters": {"binary_data": "yes"}}], "output 'y': parameters.binary_data must be"),
        ([{"name": "y", "parameters": {"classification": 2}}], "output 'y': the classification extension"),
        ([{"name": "y", "parameters": []}], "output 'y': 'parameters' must be an object"),
    ]:
        new = orjson.dumps({**header, "outputs": outputs})
        assert message in _fails(new + body[int(length) :], str(len(new)).encode())
    new = orjson.dumps({**header, "parameters": {"binary_data_output": 1}})
    assert "request: parameters.binary_data_output must be true or false" in _fails(
        new + body[int(length) :], str(len(new)).encode()
    )


# -- fuzz ------------------------------------------------------------------------------------------------

sizes = st.integers(-3, 40) | st.sampled_from([2**31, 2**63, 10**30]) | st.booleans() | st.text(max_size=3)
fuzzed_entry = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["x", "text", "flag", "nope"]),
        "datatype": st.sampled_from(["FP32", "BYTES", "BOOL", "INT8"]),
        "shape": st.lists(st.integers(-1, 4), max_size=3),
        "parameters": st.fixed_dictionaries({"binary_data_size": sizes}),
    }
)


def _parsed_or_400(body: bytes, length: bytes | None) -> None:
    error: ServingError | None = None
    try:
        request = parse_infer_request(body, SPECS, OUTPUTS, length)
    except ServingError as exc:
        error = exc
    if error is not None:
        assert error.status == 400
        assert str(error)
        return
    for spec in SPECS:
        array = request.inputs[spec.name]
        assert array.dtype == DATATYPES[spec.datatype]
        assert all(e in (-1, d) for e, d in zip(spec.shape, array.shape, strict=True))


@settings(max_examples=400, deadline=None)
@given(st.lists(fuzzed_entry, max_size=4), st.binary(max_size=64), st.integers(-4, 4) | st.none())
def test_lying_sizes_and_bytes_are_parsed_or_rejected_with_400(
    entries: list[dict[str, Any]], tail: bytes, skew: int | None
) -> None:
    header = json.dumps({"inputs": entries}).encode()  # not orjson: sizes past 64 bits are fuzzed too
    length = None if skew is None else str(len(header) + skew).encode()
    _parsed_or_400(header + tail, length)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=96), st.binary(max_size=24))
def test_arbitrary_bytes_and_header_values_are_rejected_with_400(body: bytes, length: bytes) -> None:
    _parsed_or_400(body, length)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=12), max_size=6), st.integers(0, 3))
def test_valid_binary_framings_round_trip_and_mutations_are_400(values: list[bytes], cut: int) -> None:
    texts = ["".join(chr(33 + b % 90) for b in v) for v in values]
    payload = strings(*(t.encode() for t in texts))
    body, length = framed(
        [
            entry("x", "FP32", [0, 3], 0),
            entry("text", "BYTES", [len(texts)], len(payload)),
            entry("flag", "BOOL", [0], 0),
        ],
        [payload],
    )
    assert parse_infer_request(body, SPECS, OUTPUTS, length).inputs["text"].tolist() == texts
    if cut and payload:  # the same request with its last bytes missing
        assert "input 'text'" in _fails(body[:-cut], length)
