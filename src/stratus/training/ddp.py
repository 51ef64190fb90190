"""A torch.distributed process group for one distributed step, that never leaves a rank hanging.

Every wait is bounded by the cluster's timeout: the rendezvous at the coordinator, each collective (the
group's default timeout), and the barrier before teardown. The one wait torch does not bound is teardown
itself: a peer that crashed while exiting can leave ``destroy_process_group`` or a backend's destructor
waiting for minutes (the field notes saw 300 s). A watchdog thread therefore ends the process with
:data:`WATCHDOG_EXIT_CODE` and a message naming the rank and site if rendezvous or teardown outlives its
deadline, so the runner sees a failed rank instead of a silent one.

Backend: gloo on CPU; NCCL when CUDA is available and the backend is ``auto``. Gloo picks its network
interface from the host name; set ``GLOO_SOCKET_IFNAME`` (``NCCL_SOCKET_IFNAME`` for NCCL) when a site
has several and the default one cannot reach the peers.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Literal

import torch
import torch.distributed as dist

from stratus.training.cluster import Cluster, DistributedError

__all__ = ["WATCHDOG_EXIT_CODE", "Backend", "Watchdog", "first_line", "process_group", "resolve_backend"]

WATCHDOG_EXIT_CODE = 4
"""Exit status of a rank the watchdog ended (the worker uses 0-3): rendezvous or teardown hung."""

Backend = Literal["auto", "gloo", "nccl"]

# Torch's own waits end at the timeout; the watchdog fires only after this much more, so it catches a
# hang, never a wait that was about to fail with a proper error.
_WATCHDOG_GRACE_S = 10.0


class Watchdog:
    """Hard-exits the process if a phase outlives its deadline; ``phase`` names what was being waited on.

    A daemon thread: torch releases the GIL while it waits in C++, so the thread runs even while the
    main thread is stuck in a collective or a destructor. ``os._exit`` skips every cleanup that could
    hang again; the message is flushed first.
    """

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._deadline: float | None = None
        self._phase = ""
        self._closed = False
        self._thread = threading.Thread(target=self._watch, name="stratus-dist-watchdog", daemon=True)
        self._thread.start()

    def arm(self, phase: str, seconds: float) -> None:
        """Exit unless :meth:`disarm` is called within ``seconds``."""
        with self._lock:
            self._deadline = time.monotonic() + seconds
            self._phase = phase
        self._wake.set()

    def disarm(self) -> None:
        """The phase finished in time."""
        with self._lock:
            self._deadline = None
        self._wake.set()

    def close(self) -> None:
        """Stop the thread; the group is gone and nothing is left to watch."""
        with self._lock:
            self._deadline, self._closed = None, True
        self._wake.set()

    def _watch(self) -> None:
        while True:
            with self._lock:
                deadline, phase, closed = self._deadline, self._phase, self._closed
            if closed:
                return
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                self._fire(phase)
            self._wake.wait(wait)
            self._wake.clear()

    def _fire(self, phase: str) -> None:
        c = self._cluster
        print(
            f"stratus: {c.describe()} hung in {phase} past its {c.timeout_s:g} s timeout "
            f"(+{_WATCHDOG_GRACE_S:g} s grace); peers: {c.peers()}; coordinator {c.coordinator}. "
            f"Exiting with code {WATCHDOG_EXIT_CODE} so the step fails instead of hanging.",
            file=sys.stderr,
            flush=True,
        )
        os._exit(WATCHDOG_EXIT_CODE)


def resolve_backend(backend: Backend = "auto") -> Literal["gloo", "nccl"]:
    """``auto`` → NCCL when CUDA is available, else gloo; an explicit NCCL without CUDA is an error."""
    if backend == "auto":
        return "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl" and not torch.cuda.is_available():
        raise DistributedError("backend 'nccl' needs CUDA, which is not available here; use 'gloo' or 'auto'")
    if backend not in ("gloo", "nccl"):
        raise DistributedError(f"unknown backend {backend!r}; use 'auto', 'gloo' or 'nccl'")
    return backend


@contextmanager
def process_group(cluster: Cluster, backend: Backend = "auto") -> Iterator[torch.device]:
    """Join the step's process group for the duration of the block; yields this rank's device.

    Rendezvous is TCP at ``cluster.coordinator`` (rank 0 listens there). On a clean exit all ranks meet
    at a barrier, so none tears down while a peer still needs it, then the group is destroyed. On an
    exception the barrier is skipped (a peer is probably gone, and waiting for it would only add the
    timeout) and the error propagates; :class:`DistributedError` names the rank, site and peers.
    """
    if dist.is_initialized():
        raise DistributedError(
            f"{cluster.describe()}: a process group is already initialised in this process"
        )
    name = resolve_backend(backend)
    device = torch.device("cpu")
    if name == "nccl":
        device = torch.device("cuda", cluster.rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    timeout = timedelta(seconds=cluster.timeout_s)
    watchdog = Watchdog(cluster)
    # The store client's last connection attempt may start just before the deadline and last a whole
    # timeout: allow two before calling it a hang.
    watchdog.arm("rendezvous", 2 * cluster.timeout_s + _WATCHDOG_GRACE_S)
    try:
        dist.init_process_group(
            backend=name,
            init_method=f"tcp://{cluster.coordinator}",
            rank=cluster.rank,
            world_size=cluster.world_size,
            timeout=timeout,
            device_id=device if name == "nccl" else None,
        )
    except (RuntimeError, ValueError, OSError) as exc:  # DistError is a RuntimeError
        watchdog.close()
        raise DistributedError(
            f"{cluster.describe()} could not join the process group at {cluster.coordinator} within "
            f"{cluster.timeout_s:g} s ({name}): {first_line(exc)}. Peers: {cluster.peers()}; check that "
            "every rank started and that this site can reach the coordinator's port"
        ) from exc
    watchdog.disarm()
    try:
        yield device
    except BaseException:
        watchdog.arm("teardown after a failure", cluster.timeout_s + _WATCHDOG_GRACE_S)
        dist.destroy_process_group()
        watchdog.close()
        raise
    watchdog.arm("the final barrier and teardown", 2 * cluster.timeout_s + _WATCHDOG_GRACE_S)
    try:
        _barrier(cluster, name, timeout)
    finally:
        dist.destroy_process_group()
        watchdog.close()


def _barrier(cluster: Cluster, backend: str, timeout: timedelta) -> None:
    """Every rank reaches the end before any tears down; with gloo the error names the missing ranks."""
    try:
        if backend == "gloo":
            dist.monitored_barrier(timeout=timeout, wait_all_ranks=True)
        else:
            dist.barrier()
    except RuntimeError as exc:
        raise DistributedError(
            f"{cluster.describe()} finished, but its peers did not reach the final barrier within "
            f"{cluster.timeout_s:g} s: {first_line(exc)}. Peers: {cluster.peers()}"
        ) from exc


def first_line(exc: BaseException) -> str:
    """The gist of a torch error for a message: its first line, without the C++ source location that
    gloo puts in front or the chatty advice it appends (the full text stays in the traceback)."""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()  # and no terminal colours
    text = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", lines[0]) if lines else ""
    text = re.split(r"\s+(?:This is typically caused|GLHF)", text, maxsplit=1)[0].rstrip(".")
    return text or type(exc).__name__
