"""The V2 request parser, fuzzed in-process: whatever a client sends, the only error is a 400."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratus.errors import ServingError
from stratus.serving.protocol import DATATYPES, TensorSpec, parse_infer_request

SPECS = [
    TensorSpec("x", "FP32", (-1, 3)),
    TensorSpec("ids", "INT64", (2,)),
    TensorSpec("flag", "BOOL", (-1,)),
    TensorSpec("text", "BYTES", (-1,)),
    TensorSpec("small", "UINT8", (-1,)),
    TensorSpec("half", "FP16", (-1,)),
]
OUTPUTS = ["y", "z"]

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
)
near_valid_input = st.fixed_dictionaries(
    {
        "name": st.sampled_from([s.name for s in SPECS] + ["nope"]),
        "datatype": st.sampled_from([*DATATYPES, "FP8", 3]),
        "shape": st.lists(st.integers(-2, 4), max_size=3) | json_values,
        "data": st.lists(scalars, max_size=8)
        | st.lists(st.lists(scalars, max_size=3), max_size=3)
        | json_values,
    }
)
near_valid_body = st.fixed_dictionaries(
    {"inputs": st.lists(near_valid_input, max_size=4) | json_values},
    optional={"id": json_values, "outputs": st.lists(st.fixed_dictionaries({"name": st.text(max_size=3)}))},
)


def _parse_or_400(body: bytes) -> None:
    error: ServingError | None = None
    try:
        request = parse_infer_request(body, SPECS, OUTPUTS)
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


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_value_is_parsed_or_rejected_with_400(doc: Any) -> None:
    _parse_or_400(json.dumps(doc).encode())


@settings(max_examples=500, deadline=None)
@given(near_valid_body)
def test_near_valid_requests_are_parsed_or_rejected_with_400(doc: dict[str, Any]) -> None:
    _parse_or_400(json.dumps(doc).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_are_rejected_with_400(body: bytes) -> None:
    _parse_or_400(body)


def test_valid_request_decodes_every_input() -> None:
    body = {
        "id": "a",
        "inputs": [
            {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6.5]]},
            {"name": "ids", "shape": [2], "datatype": "INT64", "data": [1, -(2**63)]},
            {"name": "flag", "shape": [1], "datatype": "BOOL", "data": [True]},
            {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]},
            {"name": "small", "shape": [0], "datatype": "UINT8", "data": []},
            {"name": "half", "shape": [1], "datatype": "FP16", "data": [1.5]},
        ],
        "outputs": [{"name": "z"}],
    }
    request = parse_infer_request(json.dumps(body).encode(), SPECS, OUTPUTS)
    assert request.id == "a"
    assert request.outputs == ["z"]
    np.testing.assert_array_equal(request.inputs["x"], np.array([[1, 2, 3], [4, 5, 6.5]], np.float32))
    assert request.inputs["ids"].tolist() == [1, -(2**63)]
    assert request.inputs["text"].tolist() == ["hi"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"name": "small", "shape": [1], "datatype": "UINT8", "data": [256]},
            "'small': values must lie in [0, 255]",
        ),
        (
            {"name": "half", "shape": [1], "datatype": "FP16", "data": [1e6]},
            "'half': a value is out of range",
        ),
        (
            {"name": "flag", "shape": [1], "datatype": "BOOL", "data": [1]},
            "'flag': datatype BOOL needs true/false",
        ),
        ({"name": "text", "shape": [2], "datatype": "BYTES", "data": [["a"], "b"]}, "'text': 'data' must be"),
    ],
)
def test_value_errors_name_tensor_and_expectation(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ServingError) as info:
        parse_infer_request(
            json.dumps({"inputs": [entry]}).encode(), [s for s in SPECS if s.name == entry["name"]], OUTPUTS
        )
    assert info.value.status == 400
    assert message in str(info.value)


def test_ort_threads_leave_a_core_to_the_event_loop_on_small_machines() -> None:
    from stratus.serving.model import default_intra_op_threads

    assert [default_intra_op_threads(n) for n in (1, 2, 4, 16)] == [1, 1, 2, 8]


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ([True, 3], "'x': 'shape' must be a list of integers, got [True, 3]"),
        ([1, 3.0], "'x': 'shape' must be a list of integers, got [1, 3.0]"),
        ([1, "3"], "'x': 'shape' must be a list of integers"),
        ([-1, 3], "'x': shape [-1, 3] has a negative dimension"),
        ([1, -3, 2], "'x': shape [1, -3, 2] has a negative dimension"),
        ([1, 4], "'x': shape [1, 4] does not match the model's [-1, 3] (-1: any size)"),
        ([3], "'x': shape [3] does not match the model's [-1, 3]"),
        ("1,3", "'x': 'shape' must be a list of integers, got '1,3'"),
    ],
)
def test_shape_errors_name_tensor_and_expectation(shape: Any, message: str) -> None:
    entry = {"name": "x", "shape": shape, "datatype": "FP32", "data": [1.0, 2.0, 3.0]}
    with pytest.raises(ServingError) as info:
        parse_infer_request(json.dumps({"inputs": [entry]}).encode(), SPECS[:1], OUTPUTS)
    assert info.value.status == 400
    assert message in str(info.value)
