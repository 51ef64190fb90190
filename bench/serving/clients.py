"""``python -m bench.serving.clients http|grpc PORT CONCURRENCY SECONDS``: perf_analyzer-style load.

A client none of us wrote: tritonclient's own asyncio clients (``tritonclient.http.aio`` with its
default binary tensors, ``tritonclient.grpc.aio``), ``CONCURRENCY`` requests in flight in a closed loop,
as Triton's ``perf_analyzer --concurrency-range N`` does. Each answer's ``prob`` is checked against
numpy. One JSON line on stdout: requests, failures, seconds, p50_ms, p99_ms (per-request latency).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import numpy as np
import orjson

from bench.serving.model import FEATURES, MODEL_NAME, ROW, expected_prob

__all__ = ["main", "run"]


def _client(protocol: str, port: int) -> tuple[Any, Any]:
    """The async client and its module (for InferInput) of ``protocol``."""
    if protocol == "http":
        import tritonclient.http.aio as module
    elif protocol == "grpc":
        import tritonclient.grpc.aio as module  # type: ignore[no-redef]
    else:
        raise ValueError(f"protocol must be http or grpc, got {protocol!r}")
    return module.InferenceServerClient(url=f"127.0.0.1:{port}"), module


async def run(protocol: str, port: int, concurrency: int, seconds: float) -> dict[str, float]:
    """Keep ``concurrency`` requests in flight for ``seconds``; latencies of the successful ones."""
    client, module = _client(protocol, port)
    tensor = module.InferInput("x", [1, FEATURES], "FP32")
    tensor.set_data_from_numpy(ROW)  # binary tensor data by default over HTTP, raw contents over gRPC
    want = expected_prob()
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal failures
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                result = await client.infer(MODEL_NAME, [tensor])
                got = float(np.asarray(result.as_numpy("prob")).ravel()[0])
                if abs(got - want) > 1e-5:
                    raise ValueError(f"wrong answer {got}, numpy says {want}")
            except Exception as exc:  # every failure is counted; the first ones are shown
                failures += 1
                if failures <= 3:
                    print(f"! {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            latencies.append(time.perf_counter() - started)

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - began
    await client.close()
    ms = np.asarray(latencies) * 1e3 if latencies else np.zeros(1)
    return {
        "requests": float(len(latencies) + failures),
        "failures": float(failures),
        "seconds": elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def main() -> None:
    protocol, port, concurrency, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    print(orjson.dumps(asyncio.run(run(protocol, port, concurrency, seconds))).decode())


if __name__ == "__main__":
    main()
