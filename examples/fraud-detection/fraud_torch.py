"""The fraud demo's neural variant: a small MLP trained data-parallel across sites, then exported to ONNX.

``train_distributed`` is a ``kind: distributed`` step: the runner starts one worker per site with the
``STRATUS_*`` variables (see stratus.training.cluster); run alone it is an ordinary one-process step.
Every rank trains on its strided shard of the train split, in ``sync`` mode (DDP, for one site or a LAN)
or ``lowcomm`` mode (DiLoCo-style: ``sync_every`` local steps between exchanges, for sites tens of
milliseconds apart). After training every rank holds the same model and writes it (the worker checks
each rank's outputs; the runner publishes rank 0's); only rank 0 evaluates. ``export_torch_model`` turns
the model into an ONNX file with the same outputs as the scikit-learn export (``label``,
``probabilities``), so the serving side cannot tell them apart, and proves parity on held-out rows.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from fraud_steps import _load
from torch import Tensor, nn

from stratus.training import Cluster, export_torch, process_group, train
from stratus.training.data import batches, shard

if TYPE_CHECKING:
    from stratus.step import StepContext

PARITY_TOLERANCE = 1e-5  # max abs difference of fraud probabilities, torch vs onnxruntime


class FraudMLP(nn.Module):
    """Standardise, then two hidden ReLU layers, then one fraud logit.

    The train split's mean and std are plain tensor attributes, not buffers: they are fixed, travel into
    the ONNX graph as constants, and give DDP no buffers to re-broadcast on every step (one more round
    trip per step across a WAN).
    """

    def __init__(self, n_features: int, hidden: int, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.mean, self.std = mean, std
        self.layers = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers((x - self.mean) / self.std)  # type: ignore[no-any-return]


class FraudScorer(nn.Module):
    """What is served: ``label`` (int64, 1 = fraud at p ≥ 0.5) and ``probabilities`` [p(legit), p(fraud)],
    the outputs skl2onnx gives the scikit-learn model, so both models serve behind the same client."""

    def __init__(self, mlp: FraudMLP) -> None:
        super().__init__()
        self.mlp = mlp

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        p = torch.sigmoid(self.mlp(x))
        return (p[:, 0] >= 0.5).to(torch.int64), torch.cat([1.0 - p, p], dim=1)


def _param(ctx: StepContext, name: str, default: Any) -> Any:
    return ctx.params.get(name, default)


def train_distributed(ctx: StepContext) -> dict[str, Any]:
    """Train the MLP on this rank's shard; rank 0 reports ROC-AUC on the later, unseen weeks.

    Class imbalance (1 fraud in 200) is handled by ``pos_weight`` in the loss, as the tree model weighs
    its frauds: a moderate weight keeps scores usable as a threshold. One torch thread by default: two
    ranks with two threads each on a 2-core machine ran 10× slower.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    cluster = Cluster.from_env()
    rank, world_size = (cluster.rank, cluster.world_size) if cluster else (0, 1)
    mode = str(_param(ctx, "mode", "lowcomm"))
    seed, hidden = int(_param(ctx, "seed", 0)), int(_param(ctx, "hidden", 64))
    torch.set_num_threads(int(_param(ctx, "threads", 1)))
    x_all, y_all, test, names = _load(ctx.input("features"))
    x_train, y_train = x_all[~test], y_all[~test].astype(np.float32)[:, None]
    mean = torch.from_numpy(x_train.mean(axis=0))
    std = torch.from_numpy(x_train.std(axis=0)).clamp_min(1e-6)  # constant columns stay as they are
    torch.manual_seed(seed)  # rank 0's draw wins anyway: training starts by broadcasting it
    model = FraudMLP(len(names), hidden, mean, std)
    mine = shard(len(x_train), cluster)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([float(_param(ctx, "pos_weight", 10.0))]))
    options: dict[str, Any] = {
        "mode": mode,
        "steps": int(_param(ctx, "steps", 600)),
        "sync_every": int(_param(ctx, "sync_every", 8)),
        "lr": float(_param(ctx, "lr", 1e-3)),
        "outer_lr": float(_param(ctx, "outer_lr", 0.7)),
        "outer_momentum": float(_param(ctx, "outer_momentum", 0.9)),
    }
    data = batches(x_train[mine], y_train[mine], int(_param(ctx, "batch_size", 512)), seed=seed + rank)
    if cluster is not None and world_size > 1:
        with process_group(cluster):
            stats = train(model, loss_fn, data, cluster=cluster, **options)
    else:
        stats = train(model, loss_fn, data, **options)
    n_sample = min(int(test.sum()), int(_param(ctx, "parity_rows", 4096)))
    x_test = x_all[test]
    sample = x_test[np.linspace(0, len(x_test) - 1, n_sample).astype(np.int64)]  # spread over the weeks
    bundle = {
        "state_dict": model.state_dict(),
        "mean": mean,
        "std": std,
        "hidden": hidden,
        "features": names,
        "parity_sample": torch.from_numpy(sample),
    }
    torch.save(bundle, ctx.output("model"))
    metrics: dict[str, Any] = {
        "mode": mode,
        "world_size": world_size,
        "steps_per_s": round(stats.steps_per_s, 2),
        "final_loss": round(stats.final_loss, 5),
        "syncs": stats.syncs,
        "bytes_communicated_estimate": stats.bytes_communicated_estimate,
    }
    site = f" at {cluster.describe()}" if cluster else ""
    if rank != 0:
        ctx.log(f"trained {stats.steps} steps{site}: {stats.steps_per_s:.1f} steps/s")
        return metrics
    started = time.perf_counter()
    model.eval()
    with torch.no_grad():
        scores = torch.sigmoid(model(torch.from_numpy(x_test)))[:, 0].numpy()
    y_test = y_all[test]
    metrics["auc"] = round(float(roc_auc_score(y_test, scores)), 4)
    metrics["pr_auc"] = round(float(average_precision_score(y_test, scores)), 4)
    if cluster is not None and world_size > 1:
        # Every rank sends and receives about as much as rank 0 in these all-reduces: the runner records
        # it as traffic between the sites and bills it as egress.
        sent = stats.bytes_communicated_estimate
        metrics["exchange_bytes"] = {other: {"sent": sent, "received": sent} for other in cluster.sites[1:]}
    ctx.log(
        f"{mode} on {world_size} rank(s){site}: {stats.steps} steps at {stats.steps_per_s:.1f} steps/s, "
        f"{stats.syncs} syncs, ~{stats.bytes_communicated_estimate / 1e6:.1f} MB sent; ROC-AUC "
        f"{metrics['auc']}, PR-AUC {metrics['pr_auc']} ({time.perf_counter() - started:.1f} s to evaluate)"
    )
    return metrics


def load_model(path: Any) -> tuple[FraudMLP, dict[str, Any]]:
    """The trained MLP and its bundle (feature names, parity sample), as train_distributed saved them."""
    bundle: dict[str, Any] = torch.load(path, weights_only=True)  # tensors, strings and ints only: safe
    model = FraudMLP(len(bundle["features"]), int(bundle["hidden"]), bundle["mean"], bundle["std"])
    model.load_state_dict(bundle["state_dict"])
    return model.eval(), bundle


def export_torch_model(ctx: StepContext) -> dict[str, Any]:
    """ONNX for serving, published only if onnxruntime reproduces every probability and label on the
    held-out rows the training step saved (see stratus.training.export_torch)."""
    torch.set_num_threads(int(_param(ctx, "threads", 1)))
    model, bundle = load_model(ctx.input("model"))
    sample = bundle["parity_sample"].numpy()
    report = export_torch(
        FraudScorer(model),
        sample,
        ctx.output("onnx"),
        tolerance=float(_param(ctx, "tolerance", PARITY_TOLERANCE)),
        output_names=("label", "probabilities"),
    )
    ctx.log(
        f"ONNX {report.onnx_bytes} bytes; parity on {report.rows} rows, max |Δ| {report.max_abs_diff:.1e}, "
        f"{report.mismatched_labels} labels differ"
    )
    return {
        "parity_max_abs_diff": report.max_abs_diff,
        "parity_rows": report.rows,
        "mismatched_labels": report.mismatched_labels,
        "onnx_bytes": report.onnx_bytes,
    }
