"""Adaptive micro-batching: concurrent infer requests for one model share one ONNX Runtime call.

Why: a small model costs far less to run than a request costs to hand to a worker thread and back, so
under load most of the server's time goes to that hand-off, once per request. Running the requests that
queued up meanwhile as one call (inputs concatenated along axis 0, outputs split back by each request's row
count) pays it once per call instead.

Adaptive means no timer: on an idle server a request goes to ORT at once, alone. Requests that arrive while
a call runs wait for it to end, and the next call takes every queued request that can share it (up to
``max_batch_rows`` rows), so the batch size follows the load with no added latency when there is none.

Correctness comes first. A model is batched only when every input and output has a variable first
dimension; requests share a call only when they agree on every other dimension and ask for the same
outputs; a batched call whose outputs do not have one row per input row, or that fails, is run again one
request at a time, so that each client gets exactly its own rows or its own error.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stratus.errors import ServingError
from stratus.serving.model import Model
from stratus.serving.protocol import TensorSpec

__all__ = ["DEFAULT_MAX_BATCH_ROWS", "Batcher", "CallObserver", "batchable"]

DEFAULT_MAX_BATCH_ROWS = 64
log = logging.getLogger("stratus.serving")

Arrays = dict[str, np.ndarray[Any, Any]]
Result = tuple[list[TensorSpec], list[Any]]
# Told (model name, rows, requests, nanoseconds the call took) after each successful ORT call, for the
# metrics and statistics; it may be called from a worker thread, so it must be thread-safe.
CallObserver = Callable[[str, int, int, int], None]


def batchable(model: Model) -> bool:
    """Whether requests to ``model`` may be concatenated: every input and output has a variable first dim.

    A fixed first dimension (or a scalar) means the model does not treat axis 0 as independent rows.
    """
    return all(spec.shape and spec.shape[0] == -1 for spec in (*model.inputs, *model.outputs))


@dataclass(eq=False, slots=True)
class _Pending:
    """One queued request and the future its handler awaits."""

    inputs: Arrays
    outputs: list[str] | None
    rows: int
    key: Hashable
    future: asyncio.Future[Result] = field(repr=False)


def _rows_and_key(inputs: Arrays, outputs: Sequence[str] | None) -> tuple[int, Hashable] | None:
    """Row count and compatibility key of a request, or None when it must run alone.

    Requests share a call only with the same key: the same dtype and trailing dims for every input and the
    same asked outputs. A request whose inputs disagree on the row count, or with no rows, runs alone.
    """
    rows = {array.shape[0] if array.ndim else -1 for array in inputs.values()}
    if len(rows) != 1:
        return None
    (count,) = rows
    if count <= 0:
        return None
    key = (
        tuple((name, array.dtype.str, array.shape[1:]) for name, array in sorted(inputs.items())),
        None if outputs is None else tuple(outputs),
    )
    return count, key


class Batcher:
    """Runs one model's requests off the event loop, batching those that queue while a call runs.

    A batchable model gets one worker thread of its own, which makes one ORT call at a time (the intra-op
    threads parallelise inside it): it takes every queued request that can share the call, runs it, and
    hands the results back to the event loop in one callback. The requests that arrive in one event-loop
    iteration are handed over together, at its end (no timer: the loop runs that callback as soon as it has
    run the others ready), so an idle worker is woken once per iteration, not once per request.

    With ``max_batch_rows`` of 1, or for a model that is not :func:`batchable`, every request is its own
    ORT call, and calls run concurrently on the default executor's threads as they did before batching.
    """

    def __init__(
        self,
        model: Model,
        *,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        observe: CallObserver | None = None,
    ) -> None:
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be at least 1, got {max_batch_rows}")
        self.model = model
        self.max_batch_rows = max_batch_rows
        self.enabled = max_batch_rows > 1 and batchable(model)
        self._observe = observe
        # Requests of the current event-loop iteration, handed to the worker in one piece at its end: one
        # thread wake-up per iteration rather than per request (a wake-up costs more than a small ORT call).
        self._outbox: list[_Pending] = []
        # Filled by the event loop, emptied by the worker thread; SimpleQueue is thread-safe and in C.
        self._inbox: queue.SimpleQueue[list[_Pending] | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    async def run(self, inputs: Arrays, outputs: list[str] | None) -> Result:
        """The specs and arrays of the asked outputs for these inputs, exactly as ``Model.run`` gives them."""
        shape = _rows_and_key(inputs, outputs) if self.enabled else None
        if shape is None:
            result, took_ns = await asyncio.to_thread(self._timed, inputs, outputs)
            self._observed(_leading_rows(inputs), 1, took_ns)
            return result
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name=f"ort-{self.model.name}", daemon=True)
            self._worker.start()
        rows, key = shape
        loop = asyncio.get_running_loop()
        pending = _Pending(inputs, outputs, rows, key, loop.create_future())
        if not self._outbox:
            loop.call_soon(self._hand_over)
        self._outbox.append(pending)
        return await pending.future

    def _hand_over(self) -> None:
        """On the event loop, after the requests parsed in this iteration: pass them to the worker."""
        items, self._outbox = self._outbox, []
        if items:
            self._inbox.put(items)

    def close(self) -> None:
        """Stop the worker thread once the requests already queued are answered (idempotent)."""
        if self._worker is not None:
            self._hand_over()
            self._inbox.put(None)
            self._worker = None

    def _observed(self, rows: int, requests: int, took_ns: int) -> None:
        if self._observe is not None:
            self._observe(self.model.name, rows, requests, took_ns)

    def _timed(self, inputs: Arrays, outputs: Sequence[str] | None) -> tuple[Result, int]:
        """``Model.run`` and the nanoseconds it took (in whichever thread calls it)."""
        started = time.perf_counter_ns()
        result = self.model.run(inputs, outputs)
        return result, time.perf_counter_ns() - started

    def _work(self) -> None:
        """The worker thread: one ORT call at a time over whatever has queued, until :meth:`close`."""
        waiting: deque[_Pending] = deque()
        closing = False
        while waiting or not closing:
            if not waiting:
                items = self._inbox.get()
                if items is None:
                    return
                waiting.extend(items)
            while True:  # everything that queued during the last call is a candidate for this one
                try:
                    items = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if items is None:
                    closing = True
                else:
                    waiting.extend(items)
            if not waiting:
                continue
            batch = _take(waiting, self.max_batch_rows)
            try:
                results = self._run_batch(batch)
            except Exception as exc:  # a bug of ours: answer the batch with it rather than hang it
                log.exception("batched call for model %r failed", self.model.name)
                results = [ServingError(f"internal error: {exc}", status=500) for _ in batch]
            loop = batch[0].future.get_loop()
            try:
                loop.call_soon_threadsafe(_deliver, batch, results)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def _run_batch(self, batch: list[_Pending]) -> list[Result | ServingError]:
        """In a worker thread: one ORT call for the batch, or one per request when sharing it is not safe."""
        if len(batch) == 1:
            return [self._run_one(batch[0])]
        first = batch[0]
        inputs = {name: np.concatenate([item.inputs[name] for item in batch]) for name in first.inputs}
        total = sum(item.rows for item in batch)
        try:
            (specs, arrays), took_ns = self._timed(inputs, first.outputs)
        except ServingError:
            # One bad request must not fail the others, and its error must be its own.
            return [self._run_one(item) for item in batch]
        if not all(np.ndim(a) and np.shape(a)[0] == total for a in arrays):
            # The outputs are not one row per input row, so they cannot be split back: answer each request
            # from a call of its own, and stop batching this model (new requests go straight to ORT).
            if self.enabled:
                self.enabled = False
                log.warning(
                    "model %r: outputs of a batched call do not have one row per input row; "
                    "its requests are no longer batched",
                    self.model.name,
                )
            return [self._run_one(item) for item in batch]
        self._observed(total, len(batch), took_ns)
        results: list[Result | ServingError] = []
        start = 0
        for item in batch:
            stop = start + item.rows
            results.append((specs, [array[start:stop] for array in arrays]))
            start = stop
        return results

    def _run_one(self, item: _Pending) -> Result | ServingError:
        try:
            result, took_ns = self._timed(item.inputs, item.outputs)
        except ServingError as exc:
            return exc
        self._observed(item.rows, 1, took_ns)
        return result


def _take(waiting: deque[_Pending], max_rows: int) -> list[_Pending]:
    """Pop the oldest request and every later compatible one that fits in ``max_rows``, keeping order."""
    first = waiting.popleft()
    batch = [first]
    rows = first.rows
    if waiting and rows < max_rows:
        kept: list[_Pending] = []
        while waiting:
            item = waiting.popleft()
            if item.key == first.key and rows + item.rows <= max_rows:
                batch.append(item)
                rows += item.rows
            else:
                kept.append(item)
        waiting.extend(kept)
    return batch


def _deliver(batch: list[_Pending], results: list[Result | ServingError]) -> None:
    """On the event loop: settle each request's future with its own result or error."""
    for item, result in zip(batch, results, strict=True):
        if item.future.done():  # the handler was cancelled meanwhile
            continue
        if isinstance(result, ServingError):
            item.future.set_exception(result)
        else:
            item.future.set_result(result)


def _leading_rows(inputs: Arrays) -> int:
    """Rows of an unbatched call for the metrics: the first input's first dimension (1 for a scalar)."""
    for array in inputs.values():
        return int(array.shape[0]) if array.ndim else 1
    return 0
