"""Backends added to and removed from a running gateway: what `stratus serve scale` changes live.

A backend is one model server; replicas of a site are backends sharing ``Upstream.site``. Adding one
gives it a connection pool, health checks (it takes traffic once its first check passes) and a place in
every route that serves its site; a new replica takes its site's priority, weight and cost, and is
drained when every other replica of its site is (an operator's drain covers replicas added later).
Removing one takes it out of the routes and stops its checks; its pool is kept (closed) so that a
request already holding it as a later retry fails over cleanly instead of finding no pool.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from stratus.serving.gateway.config import GatewayConfig, Upstream
from stratus.serving.gateway.health import HealthChecker, SiteState
from stratus.serving.gateway.policies import Route
from stratus.serving.gateway.upstream import ConnectionPool

__all__ = ["BackendError", "Backends"]

log = logging.getLogger("stratus.gateway")


class BackendError(Exception):
    """A change the gateway refuses: ``status`` is the HTTP code, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class Backends:
    """Adds and removes backends in the gateway's live tables (shared with the request path)."""

    def __init__(
        self,
        config: GatewayConfig,
        sites: dict[str, SiteState],
        pools: dict[str, ConnectionPool],
        routes: dict[str, Route],
        health: HealthChecker,
        *,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.sites = sites
        self.pools = pools
        self.routes = routes
        self.health = health
        self.clock = clock
        # The routes that list their sites (None: every backend). A new backend joins a route that lists
        # its site or already has one of its site's backends.
        self._listed = {model: route.sites for model, route in config.models.items()}

    def add(self, upstream: Upstream) -> tuple[SiteState, bool]:
        """Add ``upstream``; (its state, whether it is new). Adding the same backend again changes nothing.

        BackendError 409 when the name is taken by a backend at another URL or of another site.
        """
        current = self.sites.get(upstream.name)
        if current is not None:
            same = (current.upstream.url, current.site) == (upstream.url, upstream.site_name)
            if not same:
                raise BackendError(
                    409,
                    f"backend {upstream.name!r} already exists at {current.upstream.url} for site "
                    f"{current.site}; remove it first",
                )
            return current, False
        siblings = [site for site in self.sites.values() if site.site == upstream.site_name]
        if siblings:
            first = siblings[0].upstream
            upstream = upstream.model_copy(
                update={
                    "priority": first.priority,
                    "weight": first.weight,
                    "cost_per_hour": first.cost_per_hour,
                }
            )
        state = SiteState(upstream, self.config.health, self.config.outlier, clock=self.clock)
        state.drained = bool(siblings) and all(site.drained for site in siblings)
        self.sites[upstream.name] = state
        self.pools[upstream.name] = ConnectionPool(upstream.host, upstream.port)
        for model, route in self.routes.items():
            listed = self._listed.get(model)
            if listed is None or upstream.site_name in listed or any(s in route.sites for s in siblings):
                route.sites.append(state)
        self.health.add(state)
        log.warning(
            "backend %s (site %s, %s) added by the admin API", upstream.name, state.site, upstream.url
        )
        return state, True

    def remove(self, name: str) -> SiteState:
        """Take backend ``name`` out of every route and stop checking it.

        BackendError 404 for an unknown name, 409 for the last backend of its site (drain the site
        instead: a site with no backend would vanish from the routes and the admin API).
        """
        state = self.sites.get(name)
        if state is None:
            raise BackendError(404, f"no backend named {name!r}; backends: {', '.join(self.sites)}")
        if not any(s.site == state.site for s in self.sites.values() if s is not state):
            raise BackendError(
                409, f"{name!r} is the last backend of site {state.site}: drain the site instead"
            )
        for route in self.routes.values():
            if state in route.sites:
                route.sites.remove(state)
        del self.sites[name]
        self.health.remove(name)
        self.pools[name].close()  # kept: a request may still hold this backend as a later retry
        log.warning("backend %s (site %s) removed by the admin API", name, state.site)
        return state

    def in_flight(self, name: str) -> int:
        """Requests sent to backend ``name`` and not answered yet."""
        pool = self.pools.get(name)
        return pool.in_flight if pool is not None else 0
