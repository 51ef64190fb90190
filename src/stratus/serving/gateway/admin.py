"""The admin API: site state, routes, drain/undrain, weights, backends; every call needs a bearer token.

``/admin/sites/NAME/...`` takes a site (every replica of it) or one backend by name (``a~2``);
``POST /admin/backends`` (a JSON body ``{"name", "url", "site"}``) adds a backend and ``DELETE
/admin/backends/NAME`` removes one, which is how `stratus serve scale` changes replicas live;
``POST /admin/backends/NAME/drain|undrain`` drains exactly one backend (replica 1's name is its site's,
so a rolling update that replaces it cannot say it through ``/admin/sites``).

Every call needs ``Authorization: Bearer <token>``.

401 when the header is missing or not a bearer token, 403 when the token is wrong (compared in constant
time), 403 as well when no token is configured at all: an admin API without a token would let anyone
who can reach the gateway drain every site. The token is never logged or echoed.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from stratus.serving.gateway.backends import BackendError, Backends
from stratus.serving.gateway.config import TOKEN_ENV, Upstream
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
        backends: Backends | None = None,
    ) -> None:
        self._token = token.encode() if token else None
        self.sites = sites
        self.routes = routes
        self.clock = clock
        self.backends = backends

    def handle(
        self, method: str, parts: list[str], authorization: bytes | None, body: bytes = b""
    ) -> AdminAnswer:
        """``parts`` is the path after ``/admin``, split on ``/``; returns (status, JSON doc, headers)."""
        refused = self._authorize(authorization)
        if refused is not None:
            return refused
        now = self.clock()
        if len(parts) == 3 and parts[0] == "backends" and parts[2] in ("drain", "undrain"):
            return self._drain_backend(method, parts[1], parts[2] == "drain", now)
        if parts and parts[0] == "backends":
            return self._backends(method, parts[1:], body, now)
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
            chosen = self._named(parts[1])
            if not chosen:
                return 404, {"error": f"no site named {parts[1]!r}; sites: {self._known()}"}, []
            for site in chosen:
                site.drained = parts[2] == "drain"
            done = "drained" if parts[2] == "drain" else "undrained"
            log.warning("%s %s by the admin API", ", ".join(s.name for s in chosen), done)
            return 200, self._docs(chosen, now), []
        if len(parts) == 4 and parts[0] == "sites" and parts[2] == "weight":
            if method != "POST":
                return 405, {"error": f"method {method} not allowed here; use POST"}, []
            return self._set_weight(parts[1], parts[3], now)
        return (
            404,
            {
                "error": "no admin route; use /admin/sites, /admin/routes, "
                "/admin/sites/NAME/drain|undrain, /admin/sites/NAME/weight/NUMBER, "
                "POST /admin/backends, DELETE /admin/backends/NAME"
            },
            [],
        )

    def _named(self, name: str) -> list[SiteState]:
        """Every backend of site ``name``, else the backend called ``name``, else none."""
        group = [site for site in self.sites.values() if site.site == name]
        if group:
            return group
        one = self.sites.get(name)
        return [one] if one is not None else []

    def _known(self) -> str:
        names = dict.fromkeys([*(s.site for s in self.sites.values()), *self.sites])
        return ", ".join(names)

    def _docs(self, chosen: list[SiteState], now: float) -> dict[str, Any]:
        """One backend's record; for several (a site's replicas), the site and each backend's record."""
        if len(chosen) == 1:
            return self.site_doc(chosen[0], now)
        return {"site": chosen[0].site, "backends": [self.site_doc(site, now) for site in chosen]}

    def _set_weight(self, name: str, text: str, now: float) -> AdminAnswer:
        """Change a site's weight for the ``weighted`` policy (the config's frozen upstream is replaced)."""
        chosen = self._named(name)
        if not chosen:
            return 404, {"error": f"no site named {name!r}; sites: {self._known()}"}, []
        try:
            weight = float(text)
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight < 0:
            return 400, {"error": f"weight {text!r}: expected a number >= 0"}, []
        for site in chosen:
            site.upstream = site.upstream.model_copy(update={"weight": weight})
        log.warning("%s weight set to %g by the admin API", ", ".join(s.name for s in chosen), weight)
        return 200, self._docs(chosen, now), []

    def _backends(self, method: str, parts: list[str], body: bytes, now: float) -> AdminAnswer:
        """``POST /admin/backends`` adds one (JSON body), ``DELETE /admin/backends/NAME`` removes one."""
        if self.backends is None:
            return 404, {"error": "this gateway cannot add or remove backends"}, []
        try:
            if not parts:
                if method != "POST":
                    return 405, {"error": f"method {method} not allowed here; use POST"}, []
                upstream = _upstream(body)
                if isinstance(upstream, str):
                    return 400, {"error": upstream}, []
                state, new = self.backends.add(upstream)
                return (201 if new else 200), self.site_doc(state, now), []
            if len(parts) == 1:
                if method != "DELETE":
                    return 405, {"error": f"method {method} not allowed here; use DELETE"}, []
                return 200, self.site_doc(self.backends.remove(parts[0]), now), []
        except BackendError as exc:
            return exc.status, {"error": str(exc)}, []
        return (
            404,
            {
                "error": "no admin route; use POST /admin/backends, DELETE /admin/backends/NAME or "
                "POST /admin/backends/NAME/drain|undrain"
            },
            [],
        )

    def _drain_backend(self, method: str, name: str, drained: bool, now: float) -> AdminAnswer:
        """Drain or undrain exactly one backend: ``/admin/sites/a/drain`` means every replica of site
        ``a``, so a rolling update that swaps replica ``a`` for ``a~2`` names the one backend here."""
        if method != "POST":
            return 405, {"error": f"method {method} not allowed here; use POST"}, []
        site = self.sites.get(name)
        if site is None:
            return 404, {"error": f"no backend named {name!r}; backends: {', '.join(self.sites)}"}, []
        site.drained = drained
        log.warning("backend %s %s by the admin API", name, "drained" if drained else "undrained")
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

    def site_doc(self, site: SiteState, now: float) -> dict[str, Any]:
        """One backend as ``GET /admin/sites`` shows it (times as seconds; ``ejected_until`` Unix time)."""
        remaining = max(0.0, site.ejected_until - now)
        return {
            "name": site.name,
            "site": site.site,
            "url": site.upstream.url,
            "in_flight": self.backends.in_flight(site.name) if self.backends is not None else None,
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


def _upstream(body: bytes) -> Upstream | str:
    """The backend a ``POST /admin/backends`` body describes, or what is wrong with it."""
    expected = 'expected a JSON object {"name": ..., "url": "http://host:port", "site": ...}'
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        return f"the body is not JSON; {expected}"
    if not isinstance(payload, dict):
        return expected
    try:
        return Upstream.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return f"{where}: {first['msg']}; {expected}"
