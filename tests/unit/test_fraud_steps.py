"""The fraud demo's steps, run in pipeline order on a small dataset: the data, the model and the ONNX file
must be real (learnable fraud, honest metrics, exact export), not just present."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from stratus.step import StepContext

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud-detection"
sys.path.insert(0, str(EXAMPLE))  # the runner puts the pipeline's folder on sys.path the same way

import fraud_steps  # noqa: E402
from fraud_data import RAW_SCHEMA, make_table  # noqa: E402

ROWS = 40_000
# step → (inputs by reference, outputs, params), as pipeline.yaml wires them
WIRING: dict[str, tuple[dict[str, str], list[str], dict[str, Any]]] = {
    "make_transactions": ({}, ["raw_transactions"], {"rows": ROWS, "seed": 7}),
    "ingest": ({"dataset:raw_transactions": "raw_transactions"}, ["transactions"], {}),
    "preprocess": ({"ingest.transactions": "transactions"}, ["features"], {}),
    "train": ({"preprocess.features": "features"}, ["model"], {}),
    "evaluate": ({"train.model": "model", "preprocess.features": "features"}, ["metrics"], {}),
    "export": ({"train.model": "model"}, ["onnx"], {}),
    "report": ({"evaluate.metrics": "metrics"}, ["summary"], {}),
}


@dataclass
class Run:
    files: dict[str, Path]
    metrics: dict[str, dict[str, Any]]


def run_step(name: str, folder: Path, files: dict[str, Path], params: dict[str, Any] | None = None) -> Any:
    """Call one step the way an executor does: a StepContext of local paths."""
    refs, outputs, default_params = WIRING[name]
    for output in outputs:
        files.setdefault(output, folder / output)
    ctx = StepContext(
        step=name,
        run_id="test",
        inputs={ref: files[artifact] for ref, artifact in refs.items()},
        outputs={output: files[output] for output in outputs},
        workdir=folder,
        params=default_params if params is None else params,
    )
    step: Callable[[StepContext], Any] = getattr(fraud_steps, name)
    return step(ctx)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("fraud")
    files: dict[str, Path] = {}
    metrics = {name: run_step(name, folder, files) for name in WIRING}
    return Run(files, metrics)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_raw_data_has_the_schema_and_a_realistic_fraud_rate(run: Run) -> None:
    raw = pq.read_table(run.files["raw_transactions"])
    assert raw.schema.equals(RAW_SCHEMA)
    assert ROWS < raw.num_rows < ROWS * 1.01  # plus a few replayed records
    assert 0.002 <= pc.mean(raw["is_fraud"]).as_py() <= 0.01
    assert raw["secs_since_prev_tx"].null_count > 0  # first transaction of each card


def test_same_seed_same_bytes_other_seed_other_data(run: Run, tmp_path: Path) -> None:
    again: dict[str, Path] = {}
    run_step("make_transactions", tmp_path, again, {"rows": ROWS, "seed": 7})
    assert sha256(again["raw_transactions"]) == sha256(run.files["raw_transactions"])
    assert make_table(5_000, 1).equals(make_table(5_000, 1))
    assert not make_table(5_000, 1).equals(make_table(5_000, 2))


def test_ingest_drops_replayed_records(run: Run) -> None:
    ids = pq.read_table(run.files["transactions"])["transaction_id"].to_numpy()
    assert run.metrics["ingest"]["duplicates"] > 0
    assert len(np.unique(ids)) == len(ids) == ROWS


def test_features_are_float32_and_split_by_time(run: Run) -> None:
    table = pq.read_table(run.files["features"])
    names = table.schema.metadata[b"feature_columns"].decode().split(",")
    assert all(table.schema.field(n).type == pa.float32() for n in names)
    split = table["split"].to_numpy(zero_copy_only=False)
    ms = table["timestamp"].cast(pa.int64()).to_numpy()
    assert ms[split == "train"].max() < ms[split == "test"].min()
    assert 0.15 < np.mean(split == "test") < 0.25


def test_model_ranks_fraud_well_above_chance(run: Run) -> None:
    metrics = run.metrics["evaluate"]
    assert metrics["roc_auc"] > 0.85
    assert metrics["pr_auc"] > 10 * metrics["base_rate"]
    assert 0 < metrics["precision"] <= 1
    assert 0 < metrics["recall"] <= 1
    assert json.loads(run.files["metrics"].read_text()) == metrics
    assert 0 < run.metrics["train"]["train_rows"] <= run.metrics["train"]["train_split_rows"]


def test_onnx_export_matches_sklearn(run: Run) -> None:
    metrics = run.metrics["export"]
    assert metrics["parity_rows"] >= 2_000
    assert metrics["parity_max_abs_diff"] <= 1e-4
    assert metrics["onnx_bytes"] == run.files["onnx"].stat().st_size > 0


def test_export_refuses_a_model_that_onnx_does_not_reproduce(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fraud_steps, "PARITY_TOLERANCE", -1.0)  # any difference at all fails
    files = {"model": run.files["model"]}
    with pytest.raises(RuntimeError, match="parity failed"):
        run_step("export", tmp_path, files)
    assert not files["onnx"].exists()


def test_report_summarises_the_metrics(run: Run) -> None:
    summary = json.loads(run.files["summary"].read_text())
    assert summary["verdict"] == run.metrics["report"]["verdict"] == "ready for review"
    assert "ROC-AUC" in summary["summary"]
    assert "PR-AUC" in summary["summary"]


def _drop_amount(t: pa.Table) -> pa.Table:
    return t.drop_columns(["amount"])


def _amount_as_text(t: pa.Table) -> pa.Table:
    return t.set_column(t.schema.get_field_index("amount"), "amount", t["amount"].cast(pa.string()))


def _hour_as_float(t: pa.Table) -> pa.Table:
    hour = pc.add(t["hour"].cast(pa.float64()), 0.5)
    return t.set_column(t.schema.get_field_index("hour"), "hour", hour)


def _unknown_channel(t: pa.Table) -> pa.Table:
    channel = pa.array(["atm", *t["channel"].to_pylist()[1:]], pa.string())
    return t.set_column(t.schema.get_field_index("channel"), "channel", channel)


def _negative_amount(t: pa.Table) -> pa.Table:
    return t.set_column(t.schema.get_field_index("amount"), "amount", pc.negate(t["amount"]))


def _null_card(t: pa.Table) -> pa.Table:
    card = pa.array([None, *t["card_id"].to_pylist()[1:]], pa.int64())
    return t.set_column(t.schema.get_field_index("card_id"), "card_id", card)


@pytest.mark.parametrize(
    ("corrupt", "column"),
    [
        (_drop_amount, "amount"),
        (_amount_as_text, "amount"),
        (_hour_as_float, "hour"),
        (_unknown_channel, "channel"),
        (_negative_amount, "amount"),
        (_null_card, "card_id"),
    ],
)
def test_ingest_names_the_bad_column(
    corrupt: Callable[[pa.Table], pa.Table], column: str, tmp_path: Path
) -> None:
    files = {"raw_transactions": tmp_path / "raw.parquet"}
    pq.write_table(corrupt(make_table(2_000, 3)), files["raw_transactions"])
    with pytest.raises(ValueError, match=f"'{column}'"):
        run_step("ingest", tmp_path, files)


def test_ingest_accepts_lossless_variants(tmp_path: Path) -> None:
    raw = make_table(2_000, 3)
    i = raw.schema.get_field_index("card_id")
    variant = raw.set_column(i, "card_id", raw["card_id"].cast(pa.int32()))
    files = {"raw_transactions": tmp_path / "raw.parquet"}
    pq.write_table(variant, files["raw_transactions"])
    run_step("ingest", tmp_path, files)
    assert pq.read_table(files["transactions"]).schema.equals(RAW_SCHEMA)
