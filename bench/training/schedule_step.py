"""The demo's ``fraud_torch:train_distributed``, with train()'s lowcomm options from ``train_options``.

The demo's step passes only mode, K and learning rates to ``train()``, so it always runs the defaults
(overlapped, bfloat16). ``python -m bench.training.schedules`` compares the schedules on the same
step: this wrapper binds the options it is given into the step's ``train`` and runs the step unchanged.
The worker imports it from this folder (the request's ``python_path``), beside the demo's folder.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import fraud_torch  # type: ignore[import-not-found]  # the demo's folder, on the step's path

from stratus.training import train

if TYPE_CHECKING:
    from stratus.step import StepContext


def train_distributed(ctx: StepContext) -> dict[str, Any]:
    """Run the demo's step with ``train`` bound to the given options; its metrics, as they are."""
    fraud_torch.train = functools.partial(train, **ctx.params.get("train_options", {}))
    metrics: dict[str, Any] = fraud_torch.train_distributed(ctx)
    return metrics
