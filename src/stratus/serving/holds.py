"""Holds: a drill asks the supervisor to leave some of a deployment's processes down for a while.

`stratus chaos kill-site SITE --for SECONDS` must keep a site down for the window, yet the supervisor
restarts any server that dies. A hold is the supervisor's own rule, not a trick played on it: before the
drill kills a process it records the process's key (``server:SITE``, ``gateway:NAME``) with a deadline
in ``holds.json`` in the serving folder; the supervisor does not restart a held process, and restarts it
as usual once the drill releases the hold or the deadline passes (so a drill that crashed cannot keep a
site down for ever). Deadlines are wall-clock seconds since the epoch, since two processes read them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from stratus.private_files import private_dir, write_private

__all__ = ["gateway_key", "held", "hold", "holds_file", "release", "server_key"]


def server_key(site: str) -> str:
    """The key of a site's model server (what the supervisor calls it too)."""
    return f"server:{site}"


def gateway_key(name: str) -> str:
    """The key of a gateway by its name in the deployment record."""
    return f"gateway:{name}"


def holds_file(folder: Path) -> Path:
    """Where a deployment's holds live: beside its record."""
    return folder / "holds.json"


def _read(folder: Path) -> dict[str, float]:
    try:
        payload = json.loads(holds_file(folder).read_text())
    except (OSError, ValueError):
        return {}  # no file, or one being replaced: nothing is held
    if not isinstance(payload, dict):
        return {}
    return {str(k): float(v) for k, v in payload.items() if isinstance(v, int | float)}


def _write(folder: Path, holds: dict[str, float]) -> None:
    private_dir(folder)
    if holds:
        write_private(holds_file(folder), json.dumps(holds, indent=2).encode())
    else:
        holds_file(folder).unlink(missing_ok=True)


def hold(folder: Path, keys: Iterable[str], seconds: float) -> None:
    """Hold ``keys`` for ``seconds`` from now (expired holds are dropped on the way)."""
    now = time.time()
    holds = {k: until for k, until in _read(folder).items() if until > now}
    for key in keys:
        holds[key] = now + seconds
    _write(folder, holds)


def release(folder: Path, keys: Iterable[str]) -> None:
    """Drop the holds on ``keys``; the supervisor restarts those processes at its next look."""
    now = time.time()
    dropped = set(keys)
    _write(folder, {k: until for k, until in _read(folder).items() if k not in dropped and until > now})


def held(folder: Path, key: str) -> bool:
    """True while ``key`` is held: the supervisor must not restart that process yet."""
    return _read(folder).get(key, 0.0) > time.time()
