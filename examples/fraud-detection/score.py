"""Score a few new card transactions through the serving gateway, as a payment service would.

Run after `stratus serve export.onnx --sites ...`: it makes fresh transactions (another seed than the
training data), builds the same features the pipeline built, and sends each row to the gateway with the
Open Inference Protocol. Each answer says which site served it (the gateway's x-stratus-site header).

    python examples/fraud-detection/score.py --url http://127.0.0.1:8080 --model fraud-detection
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys

import numpy as np

# The example's own modules: Python puts this script's folder on sys.path.
from fraud_data import make_table
from fraud_features import FEATURES, build_features


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway")
    parser.add_argument("--model", default="fraud-detection")
    parser.add_argument("--requests", type=int, default=6)
    args = parser.parse_args()
    table = build_features(make_table(20_000, seed=2027), test_fraction=0.5)
    x = np.column_stack([table[name].to_numpy() for name in FEATURES]).astype(np.float32)
    fraud = table["is_fraud"].to_numpy()
    # Half known frauds, half ordinary transactions, so the demo shows both kinds of answer.
    rows = [*np.flatnonzero(fraud == 1)[: args.requests // 2], *np.flatnonzero(fraud == 0)[: args.requests]]
    rows = rows[: args.requests]
    conn = http.client.HTTPConnection(args.url.removeprefix("http://"), timeout=10)
    print(f"{'transaction':>12}  {'actual':>6}  {'p(fraud)':>8}  site")
    for row in rows:
        body = {
            "id": f"txn-{row}",
            "inputs": [
                {"name": "features", "shape": [1, len(FEATURES)], "datatype": "FP32", "data": x[row].tolist()}
            ],
        }
        conn.request(
            "POST", f"/v2/models/{args.model}/infer", json.dumps(body), {"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            print(f"error {response.status}: {answer.get('error')}", file=sys.stderr)
            return 1
        outputs = {o["name"]: o["data"] for o in answer["outputs"]}
        probability = outputs["probabilities"][1]
        site = response.getheader("x-stratus-site", "?")
        print(f"{answer['id']:>12}  {'fraud' if fraud[row] else 'legit':>6}  {probability:8.3f}  {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
