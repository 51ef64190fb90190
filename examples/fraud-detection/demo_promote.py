"""`make demo-promote`: promote a model and roll its endpoint from one site to the next, under load.

The federated model (``fraud-federated@champion``, from `make demo-federated`) is registered as two
versions of ``fraud-promote``: v1 as ``production``, and the same model re-exported (other bytes) as
``staging``. Production is served from gcp-eu-west and aws-us-east; then, while two client threads score
transactions through the gateway without pause, ``stratus models promote fraud-promote --from-alias
staging --to-alias production --deploy gcp-eu-west,aws-us-east`` copies v2 to both sites' stores and rolls
the endpoint to it site by site behind the health gate. The script prints the failed requests (0) and
which version answers; it exits 1 if any request failed or the old version still answers.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import onnx
from fraud_features import FEATURES

from stratus.config import load_platform
from stratus.registry import ModelRef, Registry
from stratus.state import state_dir

HERE = Path(__file__).resolve().parent
PLATFORM = HERE / "stratus.yaml"
PORT = int(os.environ.get("DEMO_PORT", "18080"))
BODY = json.dumps(
    {
        "inputs": [
            {
                "name": "features",
                "shape": [1, len(FEATURES)],
                "datatype": "FP32",
                "data": [0.5] * len(FEATURES),
            }
        ]
    }
)


def stratus(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "stratus", *args, "--platform", str(PLATFORM)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def register_versions() -> int:
    """v1 (production) and a re-export of it (staging) of ``fraud-promote``, from the federated model."""
    block = load_platform(PLATFORM).registry
    registry = Registry.open(block.tracking_uri if block else None, state_dir(PLATFORM))
    champion = registry.version(ModelRef("fraud-federated", alias="champion"))
    assert champion.lineage is not None, "run `make demo-federated` first"
    with tempfile.TemporaryDirectory() as tmp:
        v1 = registry.download_version(champion, Path(tmp))
        model = onnx.load(str(v1))
        model.doc_string = f"re-exported at {time.time():.0f}"
        v2 = Path(tmp) / "fraud-promote.onnx"
        onnx.save(model, str(v2))
        registry.register("fraud-promote", v1, champion.lineage, aliases=["production"])
        staged = registry.register("fraud-promote", v2, champion.lineage, aliases=["staging"])
    print(f"registered fraud-promote v{staged.version - 1} (production) and v{staged.version} (staging)")
    return staged.version


class Load:
    """Two threads scoring one transaction after another through the gateway."""

    def __init__(self) -> None:
        self.versions: Counter[str] = Counter()
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run) for _ in range(2)]

    def run(self) -> None:
        while not self.stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
            try:
                conn.request(
                    "POST", "/v2/models/fraud-promote/infer", BODY, {"Content-Type": "application/json"}
                )
                response = conn.getresponse()
                answer = json.loads(response.read())
                if response.status == 200:
                    self.versions[f"v{answer['model_version']}"] += 1
                else:
                    self.failures.append(f"{response.status}: {answer.get('error')}")
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
            finally:
                conn.close()


def main() -> int:
    new = register_versions()
    served = stratus("serve", "models:/fraud-promote@production", "--sites", "gcp-eu-west,aws-us-east",
                     "--port", str(PORT), "--detach")  # fmt: skip
    if served.returncode != 0:
        print(served.stdout + served.stderr, file=sys.stderr)
        return 1
    load = Load()
    try:
        for thread in load.threads:
            thread.start()
        time.sleep(1.0)
        print(f"serving production under load: {dict(load.versions)} answered so far")
        promoted = stratus("models", "promote", "fraud-promote", "--from-alias", "staging", "--to-alias",
                           "production", "--deploy", "gcp-eu-west,aws-us-east", "--watch", "2")  # fmt: skip
        print(promoted.stdout.strip() or promoted.stderr.strip())
        before = Counter(load.versions)
        time.sleep(1.0)
    finally:
        load.stop.set()
        for thread in load.threads:
            thread.join()
        stratus("serve", "stop", "--name", "fraud-promote")
    after = dict(load.versions - before)
    total = sum(load.versions.values()) + len(load.failures)
    print(f"requests={total} failures={len(load.failures)}; answers after the roll: {after}")
    return 0 if promoted.returncode == 0 and not load.failures and set(after) == {f"v{new}"} else 1


if __name__ == "__main__":
    sys.exit(main())
