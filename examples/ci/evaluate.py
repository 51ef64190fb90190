"""The CI gate: score a registered model on fresh transactions and fail below a minimum AUC.

    python examples/ci/evaluate.py --model models:/fraud-ci@staging --min-auc 0.80 \
        --platform examples/fraud-detection/stratus.yaml

The model is fetched from the platform's registry (hash-checked), run with onnxruntime on transactions
made with a seed no training used, and its ROC AUC compared with the threshold: exit 0 and the AUC when
it passes, exit 1 naming both numbers when it does not.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fraud-detection"))
from fraud_data import make_table
from fraud_features import FEATURES, build_features

from stratus.config import load_platform
from stratus.registry import fetch_model
from stratus.state import state_dir


def auc(labels: np.ndarray, scores: np.ndarray) -> float:  # type: ignore[type-arg]
    """ROC AUC by the rank-sum formula."""
    order = scores.argsort().argsort() + 1
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    return float((order[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="models:/NAME@ALIAS or models:/NAME/VERSION")
    parser.add_argument("--min-auc", type=float, required=True)
    parser.add_argument("--platform", type=Path, default=Path("stratus.yaml"))
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    platform = load_platform(args.platform)
    tracking_uri = platform.registry.tracking_uri if platform.registry else None
    with tempfile.TemporaryDirectory() as tmp:
        state = state_dir(args.platform)
        path = fetch_model(args.model, Path(tmp), tracking_uri=tracking_uri, state_dir=state)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    table = build_features(make_table(args.rows, seed=4242), test_fraction=0.5)
    x = np.column_stack([table[name].to_numpy() for name in FEATURES]).astype(np.float32)
    _, probabilities = session.run(None, {"features": x})
    score = auc(table["is_fraud"].to_numpy(), probabilities[:, 1])
    if score < args.min_auc:
        print(f"{args.model}: AUC {score:.4f} is below the minimum {args.min_auc:.4f}", file=sys.stderr)
        return 1
    print(f"{args.model}: AUC {score:.4f} >= {args.min_auc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
