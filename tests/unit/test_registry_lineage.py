"""A model's lineage in and out of MLflow's tags, params and metrics: exact, validated, readable back."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from stratus.registry import Lineage, RegistryError

SHA_A = "a" * 64
SHA_B = "0123456789abcdef" * 4


def lineage(**changes: object) -> Lineage:
    fields: dict[str, object] = {
        "run_id": "20260101-120000-fraud",
        "step": "train",
        "sites": ["gcp-eu-west", "aws-us-east"],
        "inputs": {"dataset:transactions": SHA_A, "features.train": SHA_B},
        "metrics": {"auc": 0.93, "log loss": 0.21},
        "cost_usd": Decimal("1.270001"),
        "pipeline": "fraud",
        "tags": {"owner": "risk-team"},
    }
    fields.update(changes)
    return Lineage(**fields)  # type: ignore[arg-type]


def test_tags_round_trip_exactly() -> None:
    original = lineage()
    tags = original.to_tags()
    assert Lineage.from_tags(tags) == original
    assert tags["stratus.cost_usd"] == "1.270001"
    assert json.loads(tags["stratus.sites"]) == ["gcp-eu-west", "aws-us-east"]
    assert json.loads(tags["stratus.inputs"]) == {"dataset:transactions": SHA_A, "features.train": SHA_B}
    assert tags["owner"] == "risk-team"


def test_round_trip_without_pipeline_or_extras() -> None:
    original = lineage(pipeline=None, tags={}, inputs={}, metrics={})
    assert "stratus.pipeline" not in original.to_tags()
    assert Lineage.from_tags(original.to_tags()) == original


def test_params_and_metrics_use_keys_mlflow_accepts_everywhere() -> None:
    value = lineage()
    assert value.to_params() == {
        "stratus_run_id": "20260101-120000-fraud",
        "step": "train",
        "sites": "gcp-eu-west,aws-us-east",
        "pipeline": "fraud",
        "input/dataset_transactions": SHA_A,
        "input/features.train": SHA_B,
    }
    assert value.to_metrics() == {"auc": 0.93, "log loss": 0.21, "cost_usd": 1.270001}


def test_inputs_are_copied_so_the_value_cannot_change() -> None:
    inputs = {"a": SHA_A}
    value = lineage(inputs=inputs, sites=["x"])
    inputs["b"] = SHA_B
    assert dict(value.inputs) == {"a": SHA_A}
    assert value.sites == ("x",)


def test_a_float_cost_becomes_its_shortest_decimal() -> None:
    assert lineage(cost_usd=0.1).cost_usd == Decimal("0.1")
    assert lineage(cost_usd=3).cost_usd == Decimal(3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"run_id": " "}, "lineage run_id must not be empty"),
        ({"step": ""}, "lineage step must not be empty"),
        ({"sites": []}, "lineage sites must name at least one site, got []"),
        (
            {"inputs": {"features": "abc"}},
            "input 'features': 'abc' is not a SHA-256 (64 lowercase hex digits)",
        ),
        ({"metrics": {"auc": float("nan")}}, "metric 'auc' is nan; MLflow stores only finite numbers"),
        ({"cost_usd": Decimal("-1")}, "cost_usd must be a non-negative amount, got -1"),
        ({"cost_usd": "lots"}, "cost_usd 'lots' is not a number"),
        (
            {"tags": {"stratus.step": "x"}},
            "tags ['stratus.step'] use the reserved prefix 'stratus.'; rename them",
        ),
    ],
)
def test_bad_lineage_is_refused_with_the_reason(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        lineage(**changes)
    assert str(caught.value) == message


def test_versions_registered_outside_stratus_have_no_lineage() -> None:
    assert Lineage.from_tags({"mlflow.source.type": "NOTEBOOK"}) is None


def test_hand_edited_tags_are_reported_not_crashed_on() -> None:
    tags = lineage().to_tags()
    tags["stratus.sites"] = '{"not": "a list"}'
    with pytest.raises(RegistryError) as caught:
        Lineage.from_tags(tags)
    assert str(caught.value) == (
        "the version's stratus.* tags are malformed (stratus.sites holds dict, expected a JSON list); "
        "were they edited by hand?"
    )


def test_residency_round_trips_and_is_checked() -> None:
    bound = lineage(residency=["eu"])
    assert bound.residency == ("EU",)
    assert Lineage.from_tags(bound.to_tags()) == bound
    assert bound.to_json()["residency"] == ["EU"]
    tags = bound.to_tags()
    tags["stratus.residency"] = "[7]"
    with pytest.raises(RegistryError) as caught:
        Lineage.from_tags(tags)
    assert "residency must list jurisdictions such as EU, got [7]" in str(caught.value)
    # Versions registered before the tag existed read back as unbound (serving also asks the manifest).
    del tags["stratus.residency"]
    restored = Lineage.from_tags(tags)
    assert restored is not None
    assert restored.residency == ()


def test_lineage_too_big_for_one_mlflow_tag_says_so() -> None:
    many = {f"shard-{i:04d}": SHA_A for i in range(200)}
    with pytest.raises(RegistryError) as caught:
        lineage(inputs=many).to_tags()
    assert "lineage tag stratus.inputs is 16" in str(caught.value)
    assert "over MLflow's limit of 8000; record fewer inputs or metrics per model" in str(caught.value)


def test_json_has_money_as_an_exact_string() -> None:
    payload = lineage().to_json()
    assert payload["cost_usd"] == "1.270001"
    assert payload["sites"] == ["gcp-eu-west", "aws-us-east"]
    assert payload["metrics"] == {"auc": 0.93, "log loss": 0.21}
