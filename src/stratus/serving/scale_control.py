"""How `stratus serve scale` asks a deployment's supervisor to change a site's replicas, and hears back.

The supervisor owns the model servers (it started them, it restarts them), so a scale is done by it and
nothing else: two processes restarting the same children would fight. The CLI leaves a request in
``scale-request.json`` in the deployment's folder (created atomically and exclusively, so two scales
never overwrite each other's); the supervisor takes it (reads and deletes it), does the scale, and
writes the outcome to ``scale-<id>.json``, which the CLI reads and deletes. Files, like the holds of
:mod:`.holds`, because the CLI already reads the folder and needs no port or socket to find.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratus.errors import ServingError
from stratus.private_files import write_private

__all__ = ["ScaleRequest", "answer", "submit", "take", "wait_answer"]

_REQUEST = "scale-request.json"


@dataclass(frozen=True)
class ScaleRequest:
    """Set ``site``'s model servers to ``replicas``; ``id`` names the answer file."""

    id: str
    site: str
    replicas: int


def _answer_file(folder: Path, request_id: str) -> Path:
    return folder / f"scale-{request_id}.json"


def submit(folder: Path, site: str, replicas: int) -> ScaleRequest:
    """Leave a request for the supervisor; ServingError (409) while another one is still waiting."""
    request = ScaleRequest(secrets.token_hex(8), site, replicas)
    staged = folder / f".scale-{request.id}.tmp"
    write_private(staged, json.dumps({"id": request.id, "site": site, "replicas": replicas}).encode())
    try:
        os.link(staged, folder / _REQUEST)  # atomic, and fails if a request is already there
    except FileExistsError:
        raise ServingError(
            "another `serve scale` of this deployment is waiting for the supervisor; try again once it "
            "is done",
            status=409,
        ) from None
    finally:
        staged.unlink(missing_ok=True)
    return request


def take(folder: Path) -> ScaleRequest | None:
    """The waiting request, removed so that it is done once; None when there is none (or it is garbled)."""
    path = folder / _REQUEST
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        payload = None
    path.unlink(missing_ok=True)
    try:
        return ScaleRequest(str(payload["id"]), str(payload["site"]), int(payload["replicas"]))
    except (TypeError, KeyError, ValueError):
        return None  # not written by `serve scale`: nobody waits for an answer to it


def answer(folder: Path, request: ScaleRequest, outcome: dict[str, Any]) -> None:
    """Write the outcome of ``request`` for the CLI that waits for it."""
    write_private(_answer_file(folder, request.id), json.dumps(outcome).encode())


def wait_answer(
    folder: Path,
    request: ScaleRequest,
    supervisor_alive: Callable[[], bool],
    timeout_s: float,
    poll_s: float = 0.1,
) -> dict[str, Any]:
    """The supervisor's outcome of ``request``; ServingError when it dies or does not answer in time."""
    path = _answer_file(folder, request.id)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            outcome: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # not written yet
        else:
            path.unlink(missing_ok=True)
            return outcome
        if not supervisor_alive():
            _withdraw(folder, request)
            raise ServingError(
                "the deployment's supervisor stopped before it answered the scale; see "
                "`stratus serve status`",
                status=503,
            )
        time.sleep(poll_s)
    _withdraw(folder, request)
    raise ServingError(
        f"the supervisor did not finish the scale within {timeout_s:g} s (--timeout); it may still be "
        "under way: see `stratus serve status`",
        status=504,
    )


def _withdraw(folder: Path, request: ScaleRequest) -> None:
    """Take back a request the supervisor has not taken yet (it would act on it with nobody waiting)."""
    path = folder / _REQUEST
    try:
        if json.loads(path.read_text()).get("id") == request.id:
            path.unlink(missing_ok=True)
    except (OSError, ValueError, AttributeError):
        pass
