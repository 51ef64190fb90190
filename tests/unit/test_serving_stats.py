"""Triton's statistics: what one server counts, and the gateway's sum of several servers' answers."""

from __future__ import annotations

import pytest

from stratus.serving.stats import MAX_BATCH_SIZES, ModelStats, merge_stats


def counted() -> ModelStats:
    stats = ModelStats("m", "1")
    stats.call(rows=4, requests=2, infer_ns=1000)  # two requests shared one call of 4 rows
    stats.request(True, total_ns=5000, input_ns=100, wait_ns=1500, output_ns=50)
    stats.request(True, total_ns=6000, input_ns=200, wait_ns=1700, output_ns=60)
    stats.request(False, total_ns=70)
    return stats


def test_a_server_counts_requests_calls_and_phases_in_tritons_shape() -> None:
    doc = counted().triton()
    assert (doc["name"], doc["version"], doc["inference_count"], doc["execution_count"]) == ("m", "1", 4, 1)
    phases = doc["inference_stats"]
    assert phases["success"] == {"count": 2, "ns": 11000}
    assert phases["fail"] == {"count": 1, "ns": 70}
    # Each request of a shared call is charged the whole call, as Triton does; queue is the rest of the wait.
    assert phases["compute_infer"] == {"count": 2, "ns": 2000}
    assert phases["queue"] == {"count": 2, "ns": 3200 - 2000}
    assert phases["compute_input"] == {"count": 2, "ns": 300}
    assert phases["compute_output"] == {"count": 2, "ns": 110}
    assert doc["batch_stats"] == [
        {
            "batch_size": 4,
            "compute_input": {"count": 0, "ns": 0},
            "compute_infer": {"count": 1, "ns": 1000},
            "compute_output": {"count": 0, "ns": 0},
        }
    ]
    assert doc["last_inference"] > 0


def test_batch_sizes_kept_are_bounded() -> None:
    stats = ModelStats("m", "1")
    for rows in range(1, MAX_BATCH_SIZES + 50):
        stats.call(rows, 1, 10)
    doc = stats.triton()
    assert len(doc["batch_stats"]) == MAX_BATCH_SIZES
    assert doc["execution_count"] == MAX_BATCH_SIZES + 49  # the totals still count every call


def test_the_gateway_sums_sites_and_keeps_only_its_models() -> None:
    one = counted().triton()
    other = ModelStats("m", "1")
    other.call(rows=4, requests=1, infer_ns=500)
    other.call(rows=1, requests=1, infer_ns=90)
    other.request(True, total_ns=900, wait_ns=600)
    other.request(True, total_ns=100, wait_ns=90)
    hidden = ModelStats("not-routed", "1").triton()
    merged = merge_stats([{"model_stats": [one, hidden]}, {"model_stats": [other.triton()]}], models=["m"])
    (entry,) = merged["model_stats"]
    assert (entry["inference_count"], entry["execution_count"]) == (9, 3)
    assert entry["inference_stats"]["success"] == {"count": 4, "ns": 12000}
    assert entry["inference_stats"]["fail"] == {"count": 1, "ns": 70}
    assert [(b["batch_size"], b["compute_infer"]) for b in entry["batch_stats"]] == [
        (1, {"count": 1, "ns": 90}),
        (4, {"count": 2, "ns": 1500}),
    ]
    assert entry["last_inference"] == max(one["last_inference"], other.triton()["last_inference"])
    assert one["inference_stats"]["success"] == {"count": 2, "ns": 11000}  # the inputs are not changed


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"model_stats": [{"name": "m"}]},
        {"model_stats": "x"},
        {"model_stats": [{"name": "m", "version": "1", "last_inference": "soon"}]},
    ],
)
def test_a_document_not_in_tritons_shape_is_a_value_error(doc: object) -> None:
    with pytest.raises(ValueError, match="not Triton's statistics shape"):
        merge_stats([doc])  # type: ignore[list-item]
