"""ONNX export with parity: files appear only when onnxruntime reproduces the model on held-out rows.

The failing cases are real converter or model behaviour, not doctored numbers: skl2onnx's float32 tree
comparisons against a HistGradientBoosting model trained on float64 data (scikit-learn ≥ 1.8 puts
thresholds on data values, so rows a float32 rounding step above a threshold flip branch), and a torch
model whose dropout stays on at inference. The fraud example runs end to end: two ranks train the MLP
through the step worker, then its export step writes an ONNX file that serves like the sklearn one.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from sklearn.ensemble import HistGradientBoostingClassifier
from torch import Tensor, nn

from stratus.step import StepContext
from stratus.training import ExportError, ParityError, export_sklearn, export_torch
from tests.integration.training_harness import launch

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud-detection"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))


def test_torch_mlp_exports_to_one_file_with_a_dynamic_batch(tmp_path: Path) -> None:
    rows = np.random.default_rng(1).normal(size=(512, 30)).astype(np.float32)
    model = _mlp()
    path = tmp_path / "mlp.onnx"
    report = export_torch(model, rows, path, output_names=("logit",))
    assert (report.rows, report.mismatched_labels, report.onnx_bytes) == (512, 0, path.stat().st_size)
    assert report.max_abs_diff <= 1e-5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp.onnx"]  # weights inside, no temp left
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape[1]) for i in session.get_inputs()] == [("features", 30)]
    for n in (1, 7):  # batch sizes other than the traced one
        (logit,) = session.run(["logit"], {"features": rows[:n]})
        with torch.no_grad():
            np.testing.assert_allclose(logit, model(torch.from_numpy(rows[:n])).numpy(), atol=1e-5)


class _DropoutAlwaysOn(nn.Module):
    """A classic inference bug: dropout forced on, so eval() does not switch it off."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 4)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(self.linear(x), p=0.5, training=True)


class _DataDependentBranch(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 2 if float(x.sum()) > 0 else x * 3


def test_torch_export_refuses_a_model_onnx_does_not_reproduce(tmp_path: Path) -> None:
    rows = np.random.default_rng(2).normal(size=(64, 8)).astype(np.float32)
    with pytest.raises(ParityError) as raised:
        export_torch(_DropoutAlwaysOn(), rows, tmp_path / "mc.onnx")
    message, report = str(raised.value), raised.value.report
    assert (
        f"ONNX parity failed for _DropoutAlwaysOn on 64 held-out rows: max |Δ| {report.max_abs_diff:.3g}"
        in message
    )
    assert "exceeds the tolerance 1e-05" in message
    assert report.max_abs_diff > 0.01
    assert not (tmp_path / "mc.onnx").exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ExportError, match=r"torch\.onnx\.export failed for _DataDependentBranch: "):
        export_torch(_DataDependentBranch(), rows, tmp_path / "branch.onnx")
    with pytest.raises(ExportError, match=r"needs at least 2 sample rows .* got 1"):
        export_torch(_mlp(), rows[:1, :], tmp_path / "one.onnx")


def _hgb_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training data, and held-out rows whose first feature sits one float64 step above a training value:
    a measurement recorded with more precision than float32 keeps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=len(x)) > 0).astype(np.int64)
    held_out = rng.normal(size=(2000, 4))
    held_out[:, 0] = np.nextafter(x[:, 0], np.inf)
    return x, y, held_out


def _hgb(x: np.ndarray, y: np.ndarray) -> HistGradientBoostingClassifier:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y)


def test_sklearn_hgb_on_float64_features_fails_parity_with_the_figures(tmp_path: Path) -> None:
    x, y, held_out = _hgb_data(0)
    model = _hgb(x, y)  # thresholds are float64 data values; ONNX compares float32
    with pytest.raises(ParityError) as raised:
        export_sklearn(model, held_out, tmp_path / "hgb.onnx")
    report, message = raised.value.report, str(raised.value)
    assert report.rows == 2000
    assert report.max_abs_diff > 0.01  # whole leaves apart, not rounding noise
    assert (
        f"ONNX parity failed for HistGradientBoostingClassifier on 2000 float64 held-out rows: "
        f"max |Δ probability| {report.max_abs_diff:.3g} (tolerance 1e-05), "
        f"{report.mismatched_labels} labels differ"
    ) in message
    assert "a tree model trained on float64 features routes rows near a threshold differently" in message
    assert list(tmp_path.iterdir()) == []


def test_sklearn_hgb_on_float32_features_exports_exactly(tmp_path: Path) -> None:
    x, y, held_out = _hgb_data(0)
    model = _hgb(x.astype(np.float32), y)  # what fraud_steps.preprocess does: float32 features
    path = tmp_path / "hgb.onnx"
    report = export_sklearn(model, held_out.astype(np.float32), path, name="hgb")
    assert (report.rows, report.mismatched_labels, report.onnx_bytes) == (2000, 0, path.stat().st_size)
    assert report.max_abs_diff <= 1e-5
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    assert export_sklearn(model, held_out.astype(np.float32), tmp_path / "again.onnx", name="hgb") == report
    assert (tmp_path / "again.onnx").read_bytes() == path.read_bytes()  # same model, same bytes


def _fraud_features(folder: Path) -> Path:
    """make → ingest → preprocess from the example, on a small dataset."""
    import fraud_steps

    steps = [
        (fraud_steps.make_transactions, {}, "raw_transactions", {"rows": 20_000, "seed": 7}),
        (fraud_steps.ingest, {"dataset:raw_transactions": "raw_transactions"}, "transactions", {}),
        (fraud_steps.preprocess, {"ingest.transactions": "transactions"}, "features", {}),
    ]
    for function, inputs, output, params in steps:
        ctx = StepContext(
            step=function.__name__,
            run_id="test",
            inputs={ref: folder / name for ref, name in inputs.items()},
            outputs={output: folder / output},
            workdir=folder,
            params=params,
        )
        function(ctx)
    return folder / "features"


def test_fraud_example_trains_on_two_ranks_and_exports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))  # as the runner puts the pipeline's folder on sys.path
    import fraud_torch

    features = _fraud_features(tmp_path / "data")
    params = {"mode": "lowcomm", "steps": 160, "sync_every": 8, "batch_size": 256}
    ranks = launch(
        tmp_path / "train",
        params,
        entrypoint="fraud_torch:train_distributed",
        python_path=[EXAMPLE],
        inputs={"preprocess.features": features},
        outputs=["model"],
        gated=False,
        timeout_s=30,
    )
    codes = [r.wait(180) for r in ranks]
    assert codes == [0, 0], "\n\n".join(r.log_text()[-3000:] for r in ranks)
    metrics = [r.result()["metrics"] for r in ranks]
    assert (metrics[0]["mode"], metrics[0]["world_size"], metrics[0]["syncs"]) == ("lowcomm", 2, 20)
    assert metrics[0]["auc"] > 0.8  # fraud in this data is learnable; 0.5 would be chance
    assert "auc" not in metrics[1]  # only rank 0 evaluates
    models = [fraud_torch.load_model(r.output("model"))[0].state_dict() for r in ranks]
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])  # identical after the last sync

    ctx = StepContext(
        step="export_torch",
        run_id="test",
        inputs={"train.model": ranks[0].output("model")},
        outputs={"onnx": tmp_path / "export" / "model.onnx"},
        workdir=tmp_path,
    )
    parity = fraud_torch.export_torch_model(ctx)
    assert parity["parity_rows"] == 4096  # the test split has ~4100 rows; the step samples 4096
    assert parity["parity_max_abs_diff"] <= 1e-5
    assert parity["mismatched_labels"] == 0
    session = ort.InferenceSession(str(ctx.outputs["onnx"]), providers=["CPUExecutionProvider"])
    sample = fraud_torch.load_model(ranks[0].output("model"))[1]["parity_sample"].numpy()[:5]
    labels, probabilities = session.run(["label", "probabilities"], {"features": sample})
    assert (labels.dtype, probabilities.shape) == (np.int64, (5, 2))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
