"""The admin API: site state, routes, drain/undrain, weights; every call needs a bearer token.

Every call needs ``Authorization: Bearer <token>``.

401 when the header is missing or not a bearer token, 403 when the token is wrong (compared in constant
time), 403 as well when no token is configured at all: an admin API without a token would let anyone
who can reach the gateway drain every site. The token is never logged or echoed.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from stratus.serving.gateway.config import TOKEN_ENV
from stratus.serving.gateway.health import SiteState
from stratus.serving.gateway.policies import Route

__all__ = ["Admin"]

log = logging.getLogger("stratus.gateway")

AdminAnswer = tuple[int, Any, list[tuple[bytes, bytes]]]
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="stratus-gateway"')]


class Admin:
    """Answers ``/admin/...`` requests from the live site states and routes."""

    def __init__(
        self,
        token: str | None,
        sites: dict[str, SiteState],
        routes: dict[str, Route],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token = token.encode() if token else None
        self.sites = sites
        self.routes = routes
        self.clock = clock

    def handle(self, method: str, parts: list[str], authorization: bytes | None) -> AdminAnswer:
        """``parts`` is the path after ``/admin``, split on ``/``; returns (status, JSON doc, headers)."""
        refused = self._authorize(authorization)
        if refused is not None:
            return refused
        now = self.clock()
        if parts == ["sites"]:
            if method != "GET":
                return 405, {"error": f"method {method} not allowed here; use GET"}, []
            return 200, {"sites": [self.site_doc(site, now) for site in self.sites.values()]}, []
        if parts == ["routes"]:
            if method != "GET":
                return 405, {"error": f"method {method} not allowed here; use GET"}, []
            return 200, {"models": {name: route.describe(now) for name, route in self.routes.items()}}, []
        if len(parts) == 3 and parts[0] == "sites" and parts[2] in ("drain", "undrain"):
            if method != "POST":
                return 405, {"error": f"method {method} not allowed here; use POST"}, []
            site = self.sites.get(parts[1])
            if site is None:
                known = ", ".join(self.sites)
                return 404, {"error": f"no site named {parts[1]!r}; sites: {known}"}, []
            site.drained = parts[2] == "drain"
            log.warning("site %s %s by the admin API", site.name, "drained" if site.drained else "undrained")
            return 200, self.site_doc(site, now), []
        if len(parts) == 4 and parts[0] == "sites" and parts[2] == "weight":
            if method != "POST":
                return 405, {"error": f"method {method} not allowed here; use POST"}, []
            return self._set_weight(parts[1], parts[3], now)
        return (
            404,
            {
                "error": "no admin route; use /admin/sites, /admin/routes, "
                "/admin/sites/NAME/drain|undrain, /admin/sites/NAME/weight/NUMBER"
            },
            [],
        )

    def _set_weight(self, name: str, text: str, now: float) -> AdminAnswer:
        """Change a site's weight for the ``weighted`` policy (the config's frozen upstream is replaced)."""
        site = self.sites.get(name)
        if site is None:
            return 404, {"error": f"no site named {name!r}; sites: {', '.join(self.sites)}"}, []
        try:
            weight = float(text)
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight < 0:
            return 400, {"error": f"weight {text!r}: expected a number >= 0"}, []
        site.upstream = site.upstream.model_copy(update={"weight": weight})
        log.warning("site %s weight set to %g by the admin API", site.name, weight)
        return 200, self.site_doc(site, now), []

    def _authorize(self, authorization: bytes | None) -> AdminAnswer | None:
        if self._token is None:
            disabled = f"the admin API is disabled: set admin_token in the config or {TOKEN_ENV}"
            return 403, {"error": disabled}, []
        scheme, _, given = (authorization or b"").partition(b" ")
        if scheme.lower() != b"bearer" or not given.strip():
            return 401, {"error": "admin API: send Authorization: Bearer <token>"}, _CHALLENGE
        if not hmac.compare_digest(given.strip(), self._token):
            return 403, {"error": "admin API: wrong token"}, []
        return None

    @staticmethod
    def site_doc(site: SiteState, now: float) -> dict[str, Any]:
        """One site as ``GET /admin/sites`` shows it (times as seconds; ``ejected_until`` as Unix time)."""
        remaining = max(0.0, site.ejected_until - now)
        return {
            "name": site.name,
            "url": site.upstream.url,
            "state": site.state(now),
            "healthy": site.healthy,
            "drained": site.drained,
            "ewma_ms": None if site.ewma_s is None else round(site.ewma_s * 1000.0, 3),
            "requests": site.requests,
            "failures": site.failures,
            "retries": site.retries,
            "ejections": site.ejections,
            "consecutive_errors": site.consecutive_errors,
            "ejected_until": round(time.time() + remaining, 3) if remaining > 0 else None,
            "ejection_remaining_s": round(remaining, 3),
            "last_error": site.last_error,
            "last_check_ms": None if site.last_check_ms is None else round(site.last_check_ms, 3),
            "last_check_age_s": None if site.last_check_at is None else round(now - site.last_check_at, 3),
            "last_check_error": site.last_check_error,
            "priority": site.upstream.priority,
            "weight": site.upstream.weight,
            "cost_per_hour": site.upstream.cost_per_hour,
        }
