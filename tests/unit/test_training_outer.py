"""The lowcomm outer step in one process: what the overlapped schedule must reproduce, and its options.

With one rank a rank's own pseudo-gradient *is* the average, so the overlapped schedule's eager start
must land exactly where the blocking schedule goes; a naive one-outer-step delay (starting each window
from the global copy without the last window's update) would not, and trains worse across ranks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from stratus.training import train
from stratus.training.data import batches


def _fit(*, overlap: bool, dtype: str, steps: int = 100) -> tuple[list[torch.Tensor], float, float]:
    """The trained parameters, and the loss on all rows before and after."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1024, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -1.0, 0.5, 0.0], dtype=np.float32))[:, None]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        before = float(nn.functional.mse_loss(model(torch.from_numpy(x)), torch.from_numpy(y)))
    stats = train(
        model,
        nn.MSELoss(),
        batches(x, y, 32, seed=0),
        mode="lowcomm",
        steps=steps,
        sync_every=8,
        lr=0.01,
        overlap=overlap,
        pseudo_gradient_dtype=dtype,  # type: ignore[arg-type]
    )
    assert (stats.syncs, stats.bytes_per_sync, stats.bytes_communicated_estimate) == (13, 0, 0)
    with torch.no_grad():
        after = float(nn.functional.mse_loss(model(torch.from_numpy(x)), torch.from_numpy(y)))
    return [p.detach().clone() for p in model.parameters()], before, after


def test_with_one_rank_overlap_is_exactly_blocking_diloco() -> None:
    (blocking, _, _), (overlapped, _, _) = (
        _fit(overlap=False, dtype="float32"),
        _fit(overlap=True, dtype="float32"),
    )
    assert all(torch.equal(a, b) for a, b in zip(blocking, overlapped, strict=True))


def test_bfloat16_on_the_wire_rounds_yet_learns_as_well() -> None:
    (exact, before, exact_after), (rounded, _, rounded_after) = (
        _fit(overlap=True, dtype="float32"),
        _fit(overlap=True, dtype="bfloat16"),
    )
    assert any(not torch.equal(a, b) for a, b in zip(exact, rounded, strict=True))  # it was rounded
    assert rounded_after < 0.25 * before
    assert rounded_after < 1.5 * exact_after


def test_an_unknown_wire_dtype_is_named() -> None:
    model = nn.Linear(2, 1)
    data = batches(np.zeros((8, 2), np.float32), np.zeros((8, 1), np.float32), 4, seed=0)
    with pytest.raises(ValueError, match="pseudo_gradient_dtype must be 'float32' or 'bfloat16', got 'fp8'"):
        train(model, nn.MSELoss(), data, mode="lowcomm", steps=1, pseudo_gradient_dtype="fp8")  # type: ignore[arg-type]
