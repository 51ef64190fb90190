"""How the CLI asks a deployment's supervisor to change its model servers, and hears back.

Two kinds of request: ``scale`` (`stratus serve scale`: a site's replicas) and ``roll`` (`stratus models
promote --deploy`: a new model version, site by site). The supervisor owns the model servers (it started
them, it restarts them), so such a change is done by it and nothing else: two processes restarting the
same children would fight. The CLI leaves a request in ``scale-request.json`` in the deployment's folder
(created atomically and exclusively, so two changes never overwrite each other's, and a scale never
runs during a roll); the supervisor takes it (reads and deletes it), carries it out, and writes the
outcome to ``scale-<id>.json``, which the CLI reads and deletes. Files, like the holds of :mod:`.holds`,
because the CLI already reads the folder and needs no port or socket to find.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stratus.errors import ServingError
from stratus.private_files import write_private

__all__ = ["KINDS", "Kind", "Request", "answer", "submit", "take", "wait_answer"]

_REQUEST = "scale-request.json"
Kind = Literal["scale", "roll"]
KINDS: tuple[Kind, ...] = ("scale", "roll")


@dataclass(frozen=True)
class Request:
    """One change for the supervisor: ``kind`` and its JSON ``params``; ``id`` names the answer file.

    ``scale``: ``{"site": S, "replicas": N}``; ``roll``: see :func:`stratus.serving.roller.roll_request`.
    """

    id: str
    kind: Kind
    params: dict[str, Any]


def _answer_file(folder: Path, request_id: str) -> Path:
    return folder / f"scale-{request_id}.json"


def submit(folder: Path, kind: Kind, params: dict[str, Any]) -> Request:
    """Leave a request for the supervisor; ServingError (409) while another one is still waiting."""
    request = Request(secrets.token_hex(8), kind, params)
    staged = folder / f".scale-{request.id}.tmp"
    write_private(staged, json.dumps({"id": request.id, "kind": kind, "params": params}).encode())
    try:
        os.link(staged, folder / _REQUEST)  # atomic, and fails if a request is already there
    except FileExistsError:
        raise ServingError(
            "another scale or roll of this deployment is waiting for the supervisor; try again once it "
            "is done",
            status=409,
        ) from None
    finally:
        staged.unlink(missing_ok=True)
    return request


def take(folder: Path) -> Request | None:
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
        request = Request(str(payload["id"]), payload["kind"], dict(payload["params"]))
    except (TypeError, KeyError, ValueError):
        return None  # not written by our CLI: nobody waits for an answer to it
    return request if request.kind in KINDS else None


def answer(folder: Path, request: Request, outcome: dict[str, Any]) -> None:
    """Write the outcome of ``request`` for the CLI that waits for it."""
    write_private(_answer_file(folder, request.id), json.dumps(outcome).encode())


def wait_answer(
    folder: Path,
    request: Request,
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
                f"the deployment's supervisor stopped before it answered the {request.kind}; see "
                "`stratus serve status`",
                status=503,
            )
        time.sleep(poll_s)
    _withdraw(folder, request)
    raise ServingError(
        f"the supervisor did not finish the {request.kind} within {timeout_s:g} s (--timeout); it may "
        "still be under way: see `stratus serve status`",
        status=504,
    )


def _withdraw(folder: Path, request: Request) -> None:
    """Take back a request the supervisor has not taken yet (it would act on it with nobody waiting)."""
    path = folder / _REQUEST
    try:
        if json.loads(path.read_text()).get("id") == request.id:
            path.unlink(missing_ok=True)
    except (OSError, ValueError, AttributeError):
        pass
