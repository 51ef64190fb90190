"""The supervisor's thread that carries out the CLI's requests (:mod:`.control`), one at a time.

A scale (:mod:`.scaler`) or a rolling update (:mod:`.roller`) runs here, never in the loop that restarts
crashed processes, so a change that takes a minute does not leave a dead gateway down for a minute.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from stratus.errors import ServingError
from stratus.serving.control import Request, answer, take
from stratus.serving.fleet import Fleet
from stratus.serving.roller import RollPlan, roll_sites
from stratus.serving.scaler import IN_FLIGHT_TIMEOUT_S, scale_site

__all__ = ["ControlWorker"]

log = logging.getLogger("stratus.serving")


class ControlWorker:
    """Takes `serve scale` and `models promote --deploy` requests and answers each."""

    def __init__(self, fleet: Fleet, poll_s: float = 0.1) -> None:
        self.fleet = fleet
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)

    def start(self) -> None:
        """Start taking requests."""
        self._thread.start()

    def stop(self) -> None:
        """Stop taking requests; one under way finishes (its servers are stopped with the fleet)."""
        self._stop.set()
        self._thread.join(timeout=2 * IN_FLIGHT_TIMEOUT_S + self.fleet.options.drain_s + 15.0)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            request = take(self.fleet.folder)
            if request is not None:
                self._serve(request)

    def _carry_out(self, request: Request) -> dict[str, Any]:
        params = request.params
        if request.kind == "roll":
            return roll_sites(self.fleet, RollPlan.from_params(params))
        try:
            site, replicas = str(params["site"]), int(params["replicas"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ServingError(f"not a scale request ({exc})", status=400) from None
        return scale_site(self.fleet, site, replicas)

    def _serve(self, request: Request) -> None:
        try:
            outcome: dict[str, Any] = {"ok": True, **self._carry_out(request)}
        except ServingError as exc:
            outcome = {"ok": False, "error": exc.detail, "status": exc.status}
        except Exception as exc:  # a bug of ours: the CLI must hear of it, and supervision goes on
            log.exception("the %s request failed", request.kind)
            outcome = {"ok": False, "error": f"internal error: {exc}", "status": 500}
        answer(self.fleet.folder, request, outcome)
