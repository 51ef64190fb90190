"""gRPC request tensors: raw and typed contents decode to what REST decodes, with REST's error messages;
answers carry raw_output_contents; the gateway reads the model name from raw bytes."""

from __future__ import annotations

import json
import struct
import sys
from typing import Any

import numpy as np
import pytest

from stratus.errors import ServingError
from stratus.serving.grpc import grpc_predict_v2_pb2 as pb
from stratus.serving.grpc.tensors import decode_bytes, encode_bytes, encode_response, parse_request
from stratus.serving.grpc.wire import WireError, string_field
from stratus.serving.protocol import TensorSpec, parse_infer_request

SPECS = [
    TensorSpec("x", "FP32", (-1, 3)),
    TensorSpec("ids", "INT64", (-1,)),
    TensorSpec("label", "BYTES", (-1,)),
]
OUTPUTS = ["y", "z"]
X = np.array([[1.5, -2.0, 3.25], [0.0, 1e-3, 7.0]], dtype=np.float32)
IDS = np.array([2**40, -5], dtype=np.int64)
LABELS = ["fraud", "ok é"]


def typed_request(**overrides: Any) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m", id="r-1")
    request.inputs.add(name="x", datatype="FP32", shape=[2, 3]).contents.fp32_contents.extend(
        X.ravel().tolist()
    )
    request.inputs.add(name="ids", datatype="INT64", shape=[2]).contents.int64_contents.extend(IDS.tolist())
    request.inputs.add(name="label", datatype="BYTES", shape=[2]).contents.bytes_contents.extend(
        [s.encode() for s in LABELS]
    )
    for key, value in overrides.items():
        setattr(request, key, value)
    return request


def raw_request() -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="FP32", shape=[2, 3])
    request.inputs.add(name="ids", datatype="INT64", shape=[2])
    request.inputs.add(name="label", datatype="BYTES", shape=[2])
    request.raw_input_contents.extend([X.tobytes(), IDS.astype("<i8").tobytes(), encode_bytes(LABELS)])
    return request


@pytest.mark.parametrize("make", [typed_request, raw_request], ids=["typed", "raw"])
def test_typed_and_raw_contents_decode_to_the_same_arrays(make: Any) -> None:
    arrays, outputs = parse_request(make(), SPECS, OUTPUTS)
    assert outputs is None
    np.testing.assert_array_equal(arrays["x"], X)
    assert arrays["x"].dtype == np.float32
    assert arrays["ids"].tolist() == IDS.tolist()
    assert arrays["ids"].dtype == np.int64
    assert arrays["label"].tolist() == LABELS


def test_requested_outputs_are_checked_like_rest() -> None:
    request = typed_request()
    request.outputs.add(name="z")
    assert parse_request(request, SPECS, OUTPUTS)[1] == ["z"]
    request.outputs.add(name="nope")
    with pytest.raises(ServingError, match=r"unknown output 'nope': the model's outputs are \['y', 'z'\]"):
        parse_request(request, SPECS, OUTPUTS)


def _rest_error(inputs: list[dict[str, Any]]) -> str:
    with pytest.raises(ServingError) as info:
        parse_infer_request(json.dumps({"inputs": inputs}).encode(), SPECS, OUTPUTS)
    assert info.value.status == 400
    return str(info.value)


def _grpc_error(request: pb.ModelInferRequest) -> str:
    with pytest.raises(ServingError) as info:
        parse_request(request, SPECS, OUTPUTS)
    assert info.value.status == 400
    return str(info.value)


REST_OK = [
    {"name": "x", "datatype": "FP32", "shape": [2, 3], "data": X.ravel().tolist()},
    {"name": "ids", "datatype": "INT64", "shape": [2], "data": IDS.tolist()},
    {"name": "label", "datatype": "BYTES", "shape": [2], "data": LABELS},
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"name": "w"}, "unknown input 'w': the model's inputs are ['ids', 'label', 'x']"),
        ({"datatype": "FP64"}, "input 'x': datatype 'FP64' does not match the model's FP32"),
        ({"shape": [2, 4]}, "input 'x': shape [2, 4] does not match the model's [-1, 3] (-1: any size)"),
        ({"shape": [3, 3]}, "input 'x': 'data' has 6 values but shape [3, 3] needs 9"),
    ],
)
def test_mistakes_get_the_rest_message(change: dict[str, Any], expected: str) -> None:
    rest = _rest_error([{**REST_OK[0], **change}, *REST_OK[1:]])
    request = typed_request()
    tensor = request.inputs[0]
    for key, value in change.items():
        if key == "shape":
            del tensor.shape[:]
            tensor.shape.extend(value)
        else:
            setattr(tensor, key, value)
    assert rest == expected
    assert _grpc_error(request) == expected


def test_missing_and_repeated_inputs_get_the_rest_message() -> None:
    request = typed_request()
    del request.inputs[1]
    assert _grpc_error(request) == _rest_error([REST_OK[0], REST_OK[2]])
    request = typed_request()
    request.inputs.append(request.inputs[0])
    assert _grpc_error(request) == _rest_error([*REST_OK, REST_OK[0]])


def test_integer_out_of_range_for_its_type() -> None:
    spec = [TensorSpec("small", "INT8", (1,))]
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="small", datatype="INT8", shape=[1]).contents.int_contents.append(300)
    with pytest.raises(ServingError, match=r"input 'small': values must lie in \[-128, 127\] for INT8"):
        parse_request(request, spec, [])


def test_raw_mistakes_name_the_tensor_and_the_sizes() -> None:
    request = raw_request()
    request.raw_input_contents[0] = X.tobytes()[:-4]
    assert (
        _grpc_error(request)
        == "input 'x': raw_input_contents holds 20 bytes but shape [2, 3] of FP32 needs 24"
    )
    request = raw_request()
    del request.raw_input_contents[2]
    assert "raw_input_contents has 2 entries but the request has 3 inputs" in _grpc_error(request)
    request = raw_request()
    request.raw_input_contents[2] = encode_bytes(["one"])
    assert _grpc_error(request) == "input 'label': raw data has 1 BYTES elements but the shape needs 2"
    request = raw_request()
    request.inputs[0].contents.fp32_contents.append(1.0)
    assert "input 'x': has contents although the request sends raw_input_contents" in _grpc_error(request)


def test_typed_values_in_the_wrong_field_and_fp16_without_raw() -> None:
    request = typed_request()
    request.inputs[1].contents.ClearField("int64_contents")
    request.inputs[1].contents.int_contents.extend([1, 2])
    assert _grpc_error(request) == "input 'ids': datatype INT64 takes its values in contents.int64_contents"
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="h", datatype="FP16", shape=[1])
    with pytest.raises(
        ServingError, match="input 'h': FP16 has no typed contents; send it in raw_input_contents"
    ):
        parse_request(request, [TensorSpec("h", "FP16", (1,))], [])


def test_bytes_elements_round_trip_and_truncation_is_refused() -> None:
    raw = encode_bytes(np.array(["a", "", "ü" * 3], dtype=object))
    assert raw == struct.pack("<I", 1) + b"a" + struct.pack("<I", 0) + struct.pack("<I", 6) + "ü".encode() * 3
    assert decode_bytes("t", raw, 3) == ["a", "", "üüü"]
    with pytest.raises(
        ServingError, match="input 't': raw BYTES data ends inside an element's 4-byte length"
    ):
        decode_bytes("t", raw + b"\x01", 4)
    with pytest.raises(ServingError, match="input 't': raw BYTES element 0 is longer than the data left"):
        decode_bytes("t", struct.pack("<I", 5) + b"ab", 1)


def test_answer_carries_raw_little_endian_outputs_and_the_id() -> None:
    specs = [TensorSpec("y", "FP32", (-1, 1)), TensorSpec("z", "BYTES", (-1,))]
    y = np.array([[0.5], [2.0]], dtype=np.float32)
    response = encode_response("m", "1", "r-1", specs, [y, np.array(["p", "q"], dtype=object)])
    assert (response.model_name, response.model_version, response.id) == ("m", "1", "r-1")
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("y", "FP32", [2, 1]),
        ("z", "BYTES", [2]),
    ]
    assert np.frombuffer(response.raw_output_contents[0], "<f4").tolist() == [0.5, 2.0]
    assert decode_bytes("z", response.raw_output_contents[1], 2) == ["p", "q"]


def test_model_name_is_read_from_raw_bytes_in_any_field_order() -> None:
    data = raw_request().SerializeToString()
    assert string_field(data, 1) == "m"
    assert string_field(pb.ModelMetadataRequest(name="logit", version="1").SerializeToString(), 1) == "logit"
    # Field 1 after others (the encoding allows any order), and repeated: the last value wins.
    late = (
        pb.ModelInferRequest(id="x").SerializeToString()
        + pb.ModelInferRequest(model_name="b").SerializeToString()
    )
    assert string_field(pb.ModelInferRequest(model_name="a").SerializeToString() + late, 1) == "b"
    assert string_field(b"", 1) == ""
    with pytest.raises(WireError, match="field 1 is longer than the message"):
        string_field(data[:2], 1)
    with pytest.raises(WireError, match="message ends inside a varint"):
        string_field(b"\x0a\x80", 1)


def test_messages_load_beside_kserves_and_tritons_definitions() -> None:
    # Both register package "inference" in protobuf's default pool; ours lives in a pool of its own.
    sys.argv, argv = sys.argv[:1], sys.argv  # importing kserve parses the command line
    try:
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as theirs
    finally:
        sys.argv = argv
    data = raw_request().SerializeToString()
    assert theirs.ModelInferRequest.FromString(data).inputs[2].name == "label"
    assert (
        pb.ModelInferRequest.FromString(theirs.ModelInferRequest.FromString(data).SerializeToString())
        == raw_request()
    )
