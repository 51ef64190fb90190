"""The floor: ONNX Runtime's own calls/s on the bench's model and row, no HTTP at all.

Run as a child (``python -m bench.serving.floor MODEL SECONDS``) so that the bench can pin it to the
server's CPU with ``taskset``, like the servers; it prints one JSON line. The session is set up as
``stratus.serving.model.Model`` sets up its own (intra-op threads by ``default_intra_op_threads``, one
inter-op thread, sequential), so the floor is what a server could reach if HTTP and JSON were free.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import onnxruntime as ort
import orjson

from bench.serving.model import ROW
from stratus.serving.model import default_intra_op_threads

__all__ = ["floor", "main"]


def floor(model: Path, seconds: float) -> dict[str, float]:
    """Calls/s of ``session.run`` on one row, after a short warm-up; also the threads it used."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = default_intra_op_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    feeds = {"x": ROW}
    for _ in range(1000):
        session.run(None, feeds)
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(500):  # check the clock every 500 calls, so it costs nothing
            session.run(None, feeds)
        calls += 500
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - started
    return {
        "calls": calls,
        "seconds": elapsed,
        "calls_per_s": calls / elapsed,
        "threads": default_intra_op_threads(),
    }


def main() -> None:
    """``python -m bench.serving.floor MODEL SECONDS``: print the floor as one JSON line."""
    model, seconds = Path(sys.argv[1]), float(sys.argv[2])
    print(orjson.dumps(floor(model, seconds)).decode())


if __name__ == "__main__":
    main()
