"""The micro-batcher in-process, on real ONNX Runtime sessions of the harness's tiny models.

Requests started together with ``asyncio.gather`` reach the batcher in one event-loop iteration, so they
are handed to the worker thread together and the calls they make are deterministic: these tests can say
exactly which requests shared which call.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stratus.errors import ServingError
from stratus.serving.batching import Batcher, batchable
from stratus.serving.model import Model
from tests.integration.serving_harness import (
    TABLE,
    expected_prob,
    expected_score,
    make_fixed,
    make_flat,
    make_logit,
    make_pick,
    x_rows,
)

Calls = list[tuple[str, int, int]]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Model]:
    folder = tmp_path_factory.mktemp("models")
    paths: dict[str, Path] = {
        "logit": make_logit(folder / "logit.onnx"),
        "pick": make_pick(folder / "pick.onnx"),
        "flat": make_flat(folder / "flat.onnx"),
        "fixed": make_fixed(folder / "fixed.onnx"),
    }
    return {name: Model(name, path, intra_op_threads=1) for name, path in paths.items()}


def run_together(batcher: Batcher, requests: list[tuple[dict[str, Any], list[str] | None]]) -> list[Any]:
    """Start every request in the same loop iteration; the results (or ServingErrors), in order."""

    async def main() -> list[Any]:
        try:
            return await asyncio.gather(
                *(batcher.run(inputs, outputs) for inputs, outputs in requests), return_exceptions=True
            )
        finally:
            batcher.close()

    return asyncio.run(main())


def recording(model: Model, max_batch_rows: int = 64) -> tuple[Batcher, Calls]:
    calls: Calls = []
    return Batcher(model, max_batch_rows=max_batch_rows, observe=lambda *c: calls.append(c[:3])), calls


def test_batchable_needs_a_variable_first_dimension_everywhere(models: dict[str, Model]) -> None:
    assert batchable(models["logit"])
    assert batchable(models["flat"])  # by its metadata; the batcher finds out at run time
    assert not batchable(models["fixed"])


def test_requests_started_together_share_one_call_and_get_their_own_rows(models: dict[str, Model]) -> None:
    batcher, calls = recording(models["logit"])
    xs = [x_rows(1 + i % 3) for i in range(10)]
    results = run_together(batcher, [({"x": x}, None) for x in xs])
    assert calls == [("logit", sum(len(x) for x in xs), 10)]
    for x, (specs, arrays) in zip(xs, results, strict=True):
        assert [s.name for s in specs] == ["prob", "score"]
        np.testing.assert_allclose(arrays[0], expected_prob(x), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(arrays[1], expected_score(x), rtol=1e-5, atol=1e-6)


def test_requests_asking_different_outputs_do_not_share_a_call(models: dict[str, Model]) -> None:
    batcher, calls = recording(models["logit"])
    xs = [x_rows(1) for _ in range(6)]
    wanted = [["score"], ["prob"], None, ["score"], ["prob"], None]
    results = run_together(batcher, [({"x": x}, w) for x, w in zip(xs, wanted, strict=True)])
    assert sorted(calls) == [("logit", 2, 2)] * 3
    for x, w, (specs, arrays) in zip(xs, wanted, results, strict=True):
        assert [s.name for s in specs] == (w or ["prob", "score"])
        expected = {"prob": expected_prob(x), "score": expected_score(x)}
        for spec, array in zip(specs, arrays, strict=True):
            np.testing.assert_allclose(array, expected[spec.name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("max_rows", "rows", "expected_calls"), [(4, 1, [4, 4, 2]), (4, 3, [3] * 3), (2, 5, [5])]
)
def test_max_batch_rows_caps_each_call(
    models: dict[str, Model], max_rows: int, rows: int, expected_calls: list[int]
) -> None:
    batcher, calls = recording(models["logit"], max_batch_rows=max_rows)
    count = sum(expected_calls) // rows
    xs = [x_rows(rows) for _ in range(count)]
    for x, (_, arrays) in zip(xs, run_together(batcher, [({"x": x}, None) for x in xs]), strict=True):
        np.testing.assert_allclose(arrays[0], expected_prob(x), rtol=1e-5, atol=1e-6)
    assert [c[1] for c in calls] == expected_calls


def test_one_rows_disables_batching(models: dict[str, Model]) -> None:
    batcher, calls = recording(models["logit"], max_batch_rows=1)
    assert not batcher.enabled
    run_together(batcher, [({"x": x_rows(2)}, None) for _ in range(5)])
    assert calls == [("logit", 2, 1)] * 5


def test_an_error_is_only_the_requests_that_caused_it(models: dict[str, Model]) -> None:
    batcher, calls = recording(models["pick"])
    indices = [3, -1, 42, 0, 9]
    results = run_together(batcher, [({"idx": np.array([[i]], np.int64)}, None) for i in indices])
    error = results[2]
    assert isinstance(error, ServingError)
    assert error.status == 400
    assert "idx=42" in str(error)
    for i, result in zip(indices, results, strict=True):
        if i != 42:
            assert result[1][0].tolist() == [[float(TABLE[i])]]
    # The shared call failed, so each request ran alone; only the good ones count as calls.
    assert calls == [("pick", 1, 1)] * 4


def test_outputs_that_are_not_one_row_per_input_row_stop_batching(models: dict[str, Model]) -> None:
    batcher, calls = recording(models["flat"])
    xs = [np.full((1 + i % 2, 3), i, np.float32) for i in range(4)]
    results = run_together(batcher, [({"x": x}, None) for x in xs])
    for x, (_, arrays) in zip(xs, results, strict=True):
        assert arrays[0].tolist() == x.ravel().tolist()
    assert [c[2] for c in calls] == [1, 1, 1, 1]
    assert not batcher.enabled


def test_a_request_whose_inputs_disagree_on_rows_runs_alone(models: dict[str, Model]) -> None:
    batcher, calls = recording(models["logit"])
    empty = np.zeros((0, 30), np.float32)
    results = run_together(
        batcher, [({"x": empty}, None), ({"x": x_rows(1)}, None), ({"x": x_rows(1)}, None)]
    )
    assert results[0][1][0].shape == (0, 1)
    assert sorted(calls) == [("logit", 0, 1), ("logit", 2, 2)]


def test_batcher_restarts_after_close(models: dict[str, Model]) -> None:
    batcher, calls = recording(models["logit"])
    for _ in range(2):  # run_together closes the batcher after each round
        x = x_rows(2)
        ((_, arrays),) = run_together(batcher, [({"x": x}, ["prob"])])
        np.testing.assert_allclose(arrays[0], expected_prob(x), rtol=1e-5, atol=1e-6)
    assert calls == [("logit", 2, 1)] * 2


def test_max_batch_rows_must_be_positive(models: dict[str, Model]) -> None:
    with pytest.raises(ValueError, match="max_batch_rows must be at least 1, got 0"):
        Batcher(models["logit"], max_batch_rows=0)
