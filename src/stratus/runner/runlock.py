"""One run of a pipeline on a platform at a time: a second ``stratus run`` waits, then reuses the results.

Two runs of the same pipeline that both execute every step pay for every step twice. The lock is a row
in the state database (:mod:`stratus.state.locks`), named after the pipeline and a digest of the platform
configuration, so it holds wherever the state database is shared: one SQLite file, or one PostgreSQL
database used from several machines. The second run waits for it; by the time it has it, the first run's
steps are in the cache, so it reuses them and runs only what differs.

A holder killed with ``kill -9`` never releases its lock, so a waiter judges the holder: on this host by
its process (PID plus start time, so a recycled PID does not count), on another host by its lease, which
a live holder renews every ``LEASE_S / 4`` seconds.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import psutil

from stratus.config import Pipeline, Platform
from stratus.state import Database, Repository, utcnow
from stratus.state.locks import Holder, Locks

__all__ = ["LEASE_S", "RunLock", "acquire_run_lock", "run_lock_name", "runner_alive", "runner_identity"]

#: A holder on another host that has not renewed its lock for this long is presumed dead.
LEASE_S = 60.0
#: How often a waiting run asks again.
POLL_S = 0.5

_HELD: set[str] = set()  # owners (with their token) this process holds now


def runner_identity() -> str:
    """``host:pid:start-time`` of this process: what run rows and locks record as their runner."""
    return f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time():.2f}"


def runner_alive(runner: str | None) -> bool:
    """Whether ``host:pid:started`` is still a live process here (another host's cannot be checked).

    The start time guards against a recycled pid that now belongs to something else.
    """
    host, pid, started = [*(runner or "").split(":"), "", "", ""][:3]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        process = psutil.Process(int(pid))
        return process.status() != psutil.STATUS_ZOMBIE and f"{process.create_time():.2f}" == started
    except psutil.Error:
        return False


def run_lock_name(pipeline: Pipeline, platform: Platform) -> str:
    """``run:PIPELINE:PLATFORM-DIGEST``: the same pipeline on another platform config is another lock."""
    digest = hashlib.sha256(platform.model_dump_json().encode()).hexdigest()[:16]
    return f"run:{pipeline.name}:{digest}"


def _stale(holder: Holder) -> bool:
    host, pid = [*holder.owner.split(":"), "", ""][:2]
    if host == socket.gethostname():
        if pid == str(os.getpid()):
            return holder.owner not in _HELD  # a lock this process took and lost track of
        return not runner_alive(holder.owner)
    return utcnow() - holder.renewed_at > timedelta(seconds=LEASE_S)


@dataclass
class RunLock:
    """A held run lock; :meth:`release` gives it up. ``waited_for`` names the run it waited for."""

    locks: Locks
    name: str
    owner: str
    waited_for: str | None = None
    notes: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start_renewing(self) -> None:
        """Renew the lease in the background until released (a daemon thread: it dies with us)."""

        def renew() -> None:
            while not self._stop.wait(LEASE_S / 4):
                try:
                    if not self.locks.renew(self.name, self.owner):
                        return  # taken over as stale: nothing left to renew
                except Exception:  # the database is briefly unreachable: try again next time
                    continue

        threading.Thread(target=renew, name="run-lock", daemon=True).start()

    def release(self) -> None:
        """Stop renewing and delete the lock row (only if this run still holds it)."""
        self._stop.set()
        _HELD.discard(self.owner)
        self.locks.release(self.name, self.owner)


def acquire_run_lock(db: Database, name: str, pipeline: str, on_note: Callable[[str], None]) -> RunLock:
    """Wait until this process holds ``name``; ``on_note`` hears who was waited for or taken over from."""
    locks = Locks(db)
    owner = f"{runner_identity()}:{secrets.token_hex(4)}"
    lock = RunLock(locks, name, owner)

    def note(message: str) -> None:
        lock.notes.append(message)
        on_note(message)

    _HELD.add(owner)
    waiting_on: str | None = None
    while True:
        taken, holder = locks.try_acquire(name, owner, _stale)
        if taken:
            break
        assert holder is not None
        if holder.owner != waiting_on:
            waiting_on = holder.owner
            lock.waited_for = _run_of(Repository(db), holder.owner)
            note(
                f"another run of pipeline {pipeline} on this platform is in progress "
                f"({_describe(lock.waited_for, holder.owner)}); waiting for it to finish, then reusing its "
                "results where code, params and inputs match"
            )
        time.sleep(POLL_S)
    if holder is not None:
        note(
            f"took over the run lock of {_describe(_run_of(Repository(db), holder.owner), holder.owner)}: "
            "its process is gone or stopped renewing its lease"
        )
    lock.start_renewing()
    return lock


def _run_of(repo: Repository, owner: str) -> str | None:
    runner = owner.rsplit(":", 1)[0]
    for row in repo.runs():
        if row.runner == runner:
            return row.id
    return None


def _describe(run_id: str | None, owner: str) -> str:
    host, pid = [*owner.split(":"), "", ""][:2]
    return f"run {run_id}, process {pid} on {host}" if run_id else f"process {pid} on {host}"
