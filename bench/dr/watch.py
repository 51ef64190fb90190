"""What the drill watches after a kill, and when each thing first happened.

Every observation comes from outside, as an operator would see it: the DNS responder's answer (asked
directly, no cache), each gateway's view of the sites (its admin API), and the deployment record the
supervisor rewrites on each restart, with the restarted process's own readiness. A
:class:`Milestone` is a condition with the milestones it must follow (a gateway is "back in DNS" only
after it was dropped); :func:`timeline` polls them all together, because in a whole-site kill they
overlap, and stops once ``final`` holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.dr.kill import record
from bench.dr.load import resolve_once
from stratus.errors import ServingError
from stratus.serving.fleet import http_ready
from stratus.serving.fleet_state import process_states
from stratus.serving.gateway_client import site_states

__all__ = ["Milestone", "Probe", "timeline"]


@dataclass(frozen=True)
class Milestone:
    """``name`` is reached the first time ``reached()`` is true once every milestone in ``after`` is."""

    name: str
    reached: Callable[[], bool]
    after: tuple[str, ...] = ()


class Probe:
    """Questions about the deployment recorded in ``serve_folder``, each answered in well under a second."""

    def __init__(self, serve_folder: Path) -> None:
        self.serve_folder = serve_folder
        first = record(serve_folder)
        assert first.dns is not None, "the drill needs the deployment's DNS responder (--dns-port)"
        self.name, self.dns_port = first.dns.name, first.dns.port
        self.token = first.admin_token

    def dns_answer(self) -> set[str] | None:
        """The addresses the responder gives the name now; None when it does not answer."""
        try:
            return set(resolve_once(self.name, self.dns_port))
        except Exception:  # a responder being restarted: no answer is not an answer
            return None

    def dns_lists(self, host: str) -> bool:
        """The responder answers and lists ``host``."""
        answer = self.dns_answer()
        return answer is not None and host in answer

    def dns_omits(self, host: str) -> bool:
        """The responder answers without ``host``."""
        answer = self.dns_answer()
        return answer is not None and host not in answer

    def site_views(self, site: str) -> list[str | None]:
        """``site``'s state as each gateway sees it (``healthy``, ``ejected``, ...); None: no answer."""
        views: list[str | None] = []
        for gateway in record(self.serve_folder).gateways:
            try:
                views.append(str(site_states(gateway.url, self.token, 0.5)[site]["state"]))
            except ServingError:
                views.append(None)
        return views

    def ejected(self, site: str) -> bool:
        """Every gateway that answers has taken ``site`` out of rotation (and one answers)."""
        views = [v for v in self.site_views(site) if v is not None]
        return bool(views) and all(v != "healthy" for v in views)

    def in_rotation(self, site: str) -> bool:
        """Every gateway answers and routes to ``site`` again."""
        return all(v == "healthy" for v in self.site_views(site))

    def server_restarted(self, site: str, old_pid: int) -> bool:
        """The supervisor recorded a new server for ``site`` and it answers ready."""
        server = record(self.serve_folder).sites[site]
        return server.pid != old_pid and http_ready(server.url, timeout_s=0.5)

    def gateway_restarted(self, name: str, old_pid: int) -> bool:
        """The supervisor recorded a new gateway ``name`` and it answers ready."""
        gateway = next(g for g in record(self.serve_folder).gateways if g.name == name)
        return gateway.pid != old_pid and http_ready(gateway.url, timeout_s=0.5)

    def whole(self) -> bool:
        """Every process runs, every gateway routes to every site, and DNS lists every gateway."""
        deployment = record(self.serve_folder)
        if not all(state.running for state in process_states(deployment)):
            return False
        if self.dns_answer() != {g.host for g in deployment.gateways}:
            return False
        return all(self.in_rotation(site) for site in deployment.sites)


def timeline(
    milestones: Sequence[Milestone],
    origin: float,
    final: str,
    timeout_s: float,
    poll_s: float = 0.05,
) -> dict[str, float | None]:
    """Seconds from ``origin`` to each milestone (None: not seen), polling until ``final`` or the timeout."""
    seen: dict[str, float | None] = {m.name: None for m in milestones}
    deadline = origin + timeout_s
    while time.monotonic() < deadline and seen[final] is None:
        for milestone in milestones:
            if seen[milestone.name] is not None or any(seen[a] is None for a in milestone.after):
                continue
            if milestone.reached():
                seen[milestone.name] = round(time.monotonic() - origin, 3)
        time.sleep(poll_s)
    return seen
