"""Triton's statistics extension: per-model inference counts and durations, and their sum over sites.

Why: ``tritonclient``'s ``get_inference_statistics`` (and perf_analyzer, which reads it to split server
time into queue and compute) expects Triton's JSON shape: per model, ``success``/``fail``/``queue``/
``compute_input``/``compute_infer``/``compute_output`` each as ``{"count", "ns"}`` (cumulative), plus
``inference_count`` (rows), ``execution_count`` (ONNX Runtime calls) and ``batch_stats`` by batch size.

The server times each request on the event loop (parse, wait for ORT, encode) and the batcher reports
each ORT call's duration from its worker thread, so :class:`ModelStats` takes a lock. A request that
shares a call is charged the whole call, as Triton charges each request of a batch; queue time is the
wait for the answer less that charge, summed (exact in total, though not split per request). The gateway
answers with :func:`merge_stats` of every site's answer: the deployment's totals, not one site's.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_BATCH_SIZES", "ModelStats", "merge_stats"]

#: Distinct batch sizes kept per model; calls of further sizes count in the totals only, so that a client
#: sending every row count from 1 to a million cannot grow the table without bound.
MAX_BATCH_SIZES = 256

_PHASES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


def _duration(count: int = 0, ns: int = 0) -> dict[str, int]:
    return {"count": count, "ns": ns}


class ModelStats:
    """Cumulative statistics of one model version since the server started."""

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        self._lock = threading.Lock()
        self._success = [0, 0]
        self._fail = [0, 0]
        self._input_ns = 0
        self._wait_ns = 0
        self._output_ns = 0
        self._charged = [0, 0]  # requests charged a call, and the ns charged to them
        self._rows = 0
        self._calls = 0
        self._last_ms = 0
        self._batches: dict[int, list[int]] = {}  # rows -> [calls, ns]

    def request(
        self, ok: bool, total_ns: int, input_ns: int = 0, wait_ns: int = 0, output_ns: int = 0
    ) -> None:
        """Record one answered infer request (``ok``: 200), with the time of each of its phases."""
        with self._lock:
            if not ok:
                self._fail[0] += 1
                self._fail[1] += total_ns
                return
            self._success[0] += 1
            self._success[1] += total_ns
            self._input_ns += input_ns
            self._wait_ns += wait_ns
            self._output_ns += output_ns
            self._last_ms = time.time_ns() // 1_000_000

    def call(self, rows: int, requests: int, infer_ns: int) -> None:
        """Record one ONNX Runtime call of ``rows`` rows made for ``requests`` requests (thread-safe)."""
        with self._lock:
            self._rows += rows
            self._calls += 1
            self._charged[0] += requests
            self._charged[1] += infer_ns * requests
            batch = self._batches.get(rows)
            if batch is None and len(self._batches) < MAX_BATCH_SIZES:
                batch = self._batches[rows] = [0, 0]
            if batch is not None:
                batch[0] += 1
                batch[1] += infer_ns

    def triton(self) -> dict[str, Any]:
        """This model's entry of ``model_stats`` in Triton's JSON shape."""
        with self._lock:
            ok = self._success[0]
            inference = {
                "success": _duration(*self._success),
                "fail": _duration(*self._fail),
                "queue": _duration(ok, max(0, self._wait_ns - self._charged[1])),
                "compute_input": _duration(ok, self._input_ns),
                "compute_infer": _duration(*self._charged),
                "compute_output": _duration(ok, self._output_ns),
                "cache_hit": _duration(),
                "cache_miss": _duration(),
            }
            batches = [
                {
                    "batch_size": rows,
                    "compute_input": _duration(),
                    "compute_infer": _duration(calls, ns),
                    "compute_output": _duration(),
                }
                for rows, (calls, ns) in sorted(self._batches.items())
            ]
            return {
                "name": self.name,
                "version": self.version,
                "last_inference": self._last_ms,
                "inference_count": self._rows,
                "execution_count": self._calls,
                "inference_stats": inference,
                "batch_stats": batches,
                "memory_usage": [],
            }


def _add_durations(into: dict[str, Any], other: dict[str, Any], keys: Sequence[str]) -> None:
    for key in keys:
        if key in other:
            mine = into.setdefault(key, _duration())
            mine["count"] = int(mine["count"]) + int(other[key]["count"])
            mine["ns"] = int(mine["ns"]) + int(other[key]["ns"])


def _merge_entry(into: dict[str, Any], entry: dict[str, Any]) -> None:
    into["last_inference"] = max(int(into["last_inference"]), int(entry["last_inference"]))
    into["inference_count"] = int(into["inference_count"]) + int(entry["inference_count"])
    into["execution_count"] = int(into["execution_count"]) + int(entry["execution_count"])
    phases = (*_PHASES, "cache_hit", "cache_miss")
    _add_durations(into["inference_stats"], entry["inference_stats"], phases)
    batches = {int(b["batch_size"]): b for b in into["batch_stats"]}
    for batch in entry["batch_stats"]:
        size = int(batch["batch_size"])
        if size in batches:
            _add_durations(batches[size], batch, ("compute_input", "compute_infer", "compute_output"))
        else:
            batches[size] = batch
    into["batch_stats"] = [batches[size] for size in sorted(batches)]


# Merged into a first entry, so that every entry goes through the same checks of its shape.
_EMPTY: dict[str, Any] = {
    "last_inference": 0,
    "inference_count": 0,
    "execution_count": 0,
    "inference_stats": {},
    "batch_stats": [],
}


def merge_stats(docs: Sequence[dict[str, Any]], models: Sequence[str] | None = None) -> dict[str, Any]:
    """The sum of several servers' statistics answers, model version by model version.

    Counts and durations add up, ``last_inference`` is the latest; with ``models``, only those models are
    kept. Raises ValueError when a document is not in Triton's shape (the caller says which site sent it).
    """
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        try:
            for entry in doc["model_stats"]:
                key = (str(entry["name"]), str(entry["version"]))
                if models is not None and key[0] not in models:
                    continue
                if key in merged:
                    _merge_entry(merged[key], entry)
                else:
                    merged[key] = copy.deepcopy(entry)
                    _merge_entry(merged[key], _EMPTY)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not Triton's statistics shape ({type(exc).__name__}: {exc})") from None
    return {"model_stats": [merged[key] for key in sorted(merged)]}
