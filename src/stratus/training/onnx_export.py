"""ONNX files for serving, published only once onnxruntime reproduces the model on held-out rows.

A converter can change predictions silently: skl2onnx compares tree thresholds in float32, so a
scikit-learn ≥ 1.8 HistGradientBoosting model trained on float64 features (its thresholds are data
values) sends rows within float32 rounding of a threshold down the other branch; torch's exporter
rewrites graphs. So both exports run the written file in onnxruntime on the caller's held-out rows,
compare with the model's own outputs, and raise :class:`ParityError` with the figures instead of
writing a file that serves different answers. The file appears at ``path`` only after parity holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from stratus.errors import ExecutorError
from stratus.training.ddp import first_line

__all__ = ["ExportError", "ParityError", "ParityReport", "export_sklearn", "export_torch"]


class ExportError(ExecutorError):
    """A model could not be converted to ONNX, or the file could not be loaded by onnxruntime."""


class ParityError(ExportError):
    """The ONNX file's outputs differ from the model's on held-out rows; carries the figures."""

    def __init__(self, message: str, report: ParityReport) -> None:
        self.report = report
        super().__init__(message)


@dataclass(frozen=True)
class ParityReport:
    """How the ONNX file compared with the model on ``rows`` held-out rows, and its size."""

    rows: int
    max_abs_diff: float
    mismatched_labels: int
    onnx_bytes: int


def export_torch(
    model: nn.Module,
    sample: np.ndarray,
    path: Path | str,
    *,
    tolerance: float = 1e-5,
    input_name: str = "features",
    output_names: Sequence[str] = ("output",),
    opset_version: int | None = None,
) -> ParityReport:
    """Export ``model`` with torch's default (dynamo) exporter to one self-contained file at ``path``.

    The batch dimension is dynamic; ``sample`` (float32 held-out rows, at least two) is both the
    example input and the parity set. Fails with :class:`ParityError` when any output differs by more
    than ``tolerance``. ``mismatched_labels`` counts rows whose predicted class differs (argmax over
    columns, or the sign of a single logit column); it is reported, not enforced, because labels here
    derive from the very outputs the tolerance already bounds.
    """
    rows = _rows(sample, np.float32)
    if len(rows) < 2:
        raise ExportError(
            f"export_torch needs at least 2 sample rows (the batch dimension is dynamic), got {len(rows)}"
        )
    was_training = model.training
    model.eval()  # the export and the reference outputs are both inference; restored below
    try:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
        with torch.no_grad():
            expected = [t.detach().cpu().numpy() for t in _as_tuple(model(torch.from_numpy(rows).to(device)))]
        batch = torch.export.Dim("batch")
        with _written_atomically(Path(path)) as tmp, _quiet_exporter():
            try:
                torch.onnx.export(
                    model,
                    (torch.from_numpy(rows[:2]).to(device),),
                    str(tmp),
                    dynamo=True,
                    external_data=False,
                    dynamic_shapes=({0: batch},),
                    input_names=[input_name],
                    output_names=list(output_names),
                    opset_version=opset_version,
                    verbose=False,
                )
            except Exception as exc:  # the exporter raises many types; all mean "not convertible"
                raise ExportError(
                    f"torch.onnx.export failed for {type(model).__name__}: {first_line(exc)} "
                    "(the traceback has the exporter's full report)"
                ) from exc
            data = tmp.read_bytes()
            actual = _run(data, input_name, rows)
            if len(actual) != len(expected):
                raise ExportError(f"the ONNX graph has {len(actual)} outputs, the model {len(expected)}")
            diff = max(_max_abs_diff(a, e) for a, e in zip(actual, expected, strict=True))
            mismatched = int(np.count_nonzero(_labels(actual[0]) != _labels(expected[0])))
            report = ParityReport(len(rows), diff, mismatched, len(data))
            if not diff <= tolerance:  # also catches NaN
                raise ParityError(
                    f"ONNX parity failed for {type(model).__name__} on {len(rows)} held-out rows: "
                    f"max |Δ| {diff:.3g} exceeds the tolerance {tolerance:g} ({mismatched} predicted classes "
                    f"differ); {path} was not written",
                    report,
                )
    finally:
        model.train(was_training)
    return report


def export_sklearn(
    model: Any,
    sample: np.ndarray,
    path: Path | str,
    *,
    tolerance: float = 1e-5,
    input_name: str = "features",
    name: str = "model",
    target_opset: int = 17,
) -> ParityReport:
    """Convert a fitted scikit-learn estimator with skl2onnx (float32 input, plain tensors, no ZipMap).

    Parity is checked on ``sample`` exactly as given (the rows the model would score, float64 or
    float32): for classifiers on every probability (within ``tolerance``) and every label (exactly),
    for regressors on the predictions. onnxruntime gets the rows cast to float32, as a server would.
    ``name`` fixes the graph name: skl2onnx's default is random, and the same model should give the
    same bytes.
    """
    from skl2onnx import convert_sklearn  # imports scikit-learn: only callers of this function pay for it
    from skl2onnx.common.data_types import FloatTensorType

    rows = _rows(sample, None)
    classifier = hasattr(model, "predict_proba")
    final = (
        model.steps[-1][1] if hasattr(model, "steps") else model
    )  # a Pipeline's options go to its last step
    options = {id(final): {"zipmap": False}} if classifier else None
    with _written_atomically(Path(path)) as tmp:
        try:
            with warnings.catch_warnings():  # skl2onnx hands protobuf bools for ints; fine below protobuf 7
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                onx = convert_sklearn(
                    model,
                    name=name,
                    initial_types=[(input_name, FloatTensorType([None, rows.shape[1]]))],
                    options=options,
                    target_opset={"": target_opset, "ai.onnx.ml": 3},
                )
        except (
            Exception
        ) as exc:  # skl2onnx raises RuntimeError, NotImplementedError, MissingShapeCalculator...
            raise ExportError(f"skl2onnx cannot convert {type(model).__name__}: {exc}") from exc
        data = onx.SerializeToString()
        tmp.write_bytes(data)
        outputs = _run(data, input_name, rows.astype(np.float32))
        if classifier:
            labels, proba = outputs[0], outputs[1]
            expected_labels = np.asarray(model.predict(rows))
            diff = _max_abs_diff(proba, np.asarray(model.predict_proba(rows)))
            mismatched = int(np.count_nonzero(labels.reshape(-1) != expected_labels.reshape(-1)))
        else:
            diff = _max_abs_diff(
                outputs[0].reshape(len(rows), -1), np.asarray(model.predict(rows)).reshape(len(rows), -1)
            )
            mismatched = 0
        report = ParityReport(len(rows), diff, mismatched, len(data))
        if not diff <= tolerance or mismatched:
            what = "probability" if classifier else "prediction"
            hint = (
                ". ONNX compares tree thresholds in float32: a tree model trained on float64 features routes "
                "rows near a threshold differently; train on float32 features"
                if rows.dtype == np.float64
                else ""
            )
            raise ParityError(
                f"ONNX parity failed for {type(model).__name__} on {len(rows)} {rows.dtype} held-out rows: "
                f"max |Δ {what}| {diff:.3g} (tolerance {tolerance:g}), {mismatched} labels differ; "
                f"{path} was not written{hint}",
                report,
            )
    return report


def _rows(sample: np.ndarray, dtype: type[np.floating[Any]] | None) -> np.ndarray:
    rows = np.asarray(sample) if dtype is None else np.asarray(sample, dtype=dtype)
    if rows.ndim != 2 or len(rows) == 0:
        raise ExportError(
            f"the parity sample must be a non-empty 2-D array (rows × features), got shape {rows.shape}"
        )
    return np.ascontiguousarray(rows)


def _run(data: bytes, input_name: str, rows: np.ndarray) -> list[np.ndarray]:
    """The ONNX file's outputs for ``rows``, as onnxruntime computes them on CPU."""
    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        return [np.asarray(out) for out in session.run(None, {input_name: rows})]
    except Exception as exc:  # onnxruntime's own exception types are not importable in a stable way
        raise ExportError(f"onnxruntime cannot run the exported model: {exc}") from exc


def _max_abs_diff(actual: np.ndarray, expected: np.ndarray) -> float:
    if actual.shape != expected.shape:
        raise ExportError(f"the ONNX output has shape {actual.shape}, the model's {expected.shape}")
    if actual.size == 0:
        return 0.0
    return float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))


def _labels(output: np.ndarray) -> np.ndarray:
    """Predicted class per row: argmax over several columns, the sign of a single logit column."""
    flat = output.reshape(len(output), -1)
    return flat.argmax(axis=1) if flat.shape[1] > 1 else flat[:, 0] > 0


def _as_tuple(output: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(output, torch.Tensor):
        return (output,)
    if isinstance(output, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in output):
        return tuple(output)
    raise ExportError(
        f"the model returns {type(output).__name__}; export_torch needs a tensor or a tuple of them"
    )


@contextlib.contextmanager
def _written_atomically(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it only if the block succeeds, else removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch.onnx logs a warning per missing optional package (torchvision) and a FutureWarning from its
    tree specs on every export; neither says anything about this model, and they drown the step's log."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)
