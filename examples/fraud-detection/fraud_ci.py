"""The CI template's training step: one logistic model trained at one site (a GCP site in the template).

The features are the federated example's (``fraud_federated:make_site_features``) and the model is the
same standardised logistic model, so ``fraud_federated:export`` turns it into ONNX unchanged.
"""

from __future__ import annotations

from typing import Any

from stratus.step import StepContext


def train(ctx: StepContext) -> dict[str, Any]:
    """Train on the site's rows; the held-out AUC is logged (the CI's evaluate step re-measures it)."""
    from stratus.training.federated import local_baseline

    result = local_baseline([ctx.input("transactions")], epochs=int(ctx.params.get("epochs", 5)))
    result.model.save(ctx.output("model"))
    ctx.log(f"trained in {result.seconds:.1f} s; held-out AUC {result.test_auc:.4f}")
    return {"test_auc": round(result.test_auc, 4)}
