"""Routing policies: the order in which a request tries the routable sites of its model.

The first site gets the request; the next ones get its retries. Every policy is a pure function of the
candidates (given in the route's configured order) and a random source; without one (``rng=None``) the
order is the deterministic one the admin API shows.

- ``failover``: by ``priority``, lowest first; ties keep the configured order.
- ``latency``: by observed latency (EWMA), fastest first; a site with no sample yet sorts first so it
  gets measured. A small share of requests (``explore``) goes first to a random other site, so a site
  that was slow once is measured again and can win back its place.
- ``weighted``: a weighted random draw without replacement (``weight`` 0 sites go last, in order).
- ``cost``: by ``cost_per_hour``, cheapest first; ties by priority, then configured order.

Replicas: backends that share a site (``Upstream.site``) are one candidate to the policy (the site's
config, and the mean latency of its measured replicas), so ``--replicas`` spreads load instead of sending
it all to the fastest replica. Within a site, replicas take turns (round robin over the routable ones).
The order a request tries is each site's next replica in policy order, then the sites' other replicas:
a retry goes to another site first, as it does without replicas.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from stratus.serving.gateway.config import Upstream
from stratus.serving.gateway.health import SiteState

__all__ = ["EXPLORE", "POLICIES", "Route", "RoutingSite", "order_sites"]

EXPLORE = 0.05
POLICIES = ("failover", "latency", "weighted", "cost")
Policy = Literal["failover", "latency", "weighted", "cost"]


class RoutingSite(Protocol):
    """What a policy looks at: the site's config and its latency estimate (seconds, None if unmeasured)."""

    @property
    def upstream(self) -> Upstream: ...

    @property
    def ewma_s(self) -> float | None: ...


C = TypeVar("C", bound=RoutingSite)


def order_sites(
    policy: Policy, sites: Sequence[C], rng: random.Random | None = None, *, explore: float = EXPLORE
) -> list[C]:
    """The sites in the order to try them under ``policy``; ``rng=None`` gives the deterministic order."""
    if len(sites) < 2:
        return list(sites)
    if policy == "failover":
        return sorted(sites, key=lambda s: s.upstream.priority)
    if policy == "cost":
        return sorted(sites, key=lambda s: (s.upstream.cost_per_hour, s.upstream.priority))
    if policy == "latency":
        ordered = sorted(sites, key=lambda s: s.ewma_s or 0.0)
        if rng is not None and rng.random() < explore:
            ordered.insert(0, ordered.pop(rng.randrange(1, len(ordered))))
        return ordered
    if policy == "weighted":
        if rng is None:
            return sorted(sites, key=lambda s: -s.upstream.weight)
        return _weighted_draw(sites, rng)
    raise ValueError(f"unknown routing policy {policy!r}; expected one of {', '.join(POLICIES)}")


def _weighted_draw(sites: Sequence[C], rng: random.Random) -> list[C]:
    remaining = list(sites)
    ordered: list[C] = []
    while remaining:
        total = sum(s.upstream.weight for s in remaining)
        if total <= 0:
            return ordered + remaining
        point = rng.random() * total
        pick = last_positive = 0
        for i, site in enumerate(remaining):
            if site.upstream.weight <= 0:
                continue
            last_positive = pick = i
            point -= site.upstream.weight
            if point < 0:
                break
        else:
            pick = last_positive  # rounding left a sliver of ``point``: the last weighted site takes it
        ordered.append(remaining.pop(pick))
    return ordered


@dataclass(frozen=True)
class _Group:
    """A site's routable replicas as one candidate: the first one's config, their mean latency."""

    replicas: list[SiteState]

    @property
    def upstream(self) -> Upstream:
        return self.replicas[0].upstream

    @property
    def ewma_s(self) -> float | None:
        measured = [r.ewma_s for r in self.replicas if r.ewma_s is not None]
        return sum(measured) / len(measured) if measured else None


@dataclass
class Route:
    """One model's policy and backends (in configured order); picks the candidates for each request."""

    model: str
    policy: Policy
    sites: list[SiteState]
    _turns: dict[str, int] = field(default_factory=dict, repr=False)

    def candidates(self, now: float, rng: random.Random | None) -> list[SiteState]:
        """The routable backends in the order to try them; empty when none is routable.

        ``rng=None`` (the admin API's view) gives the deterministic order and moves no replica's turn.
        """
        routable = [site for site in self.sites if site.routable(now)]
        groups: dict[str, list[SiteState]] = {}
        for site in routable:
            groups.setdefault(site.site, []).append(site)
        if len(groups) == len(routable):  # one backend per site: the policy orders them directly
            return order_sites(self.policy, routable, rng)
        ordered = order_sites(self.policy, [_Group(members) for members in groups.values()], rng)
        firsts: list[SiteState] = []
        rest: list[SiteState] = []
        for group in ordered:
            members = group.replicas
            turn = self._turns.get(group.upstream.site_name, 0)
            if rng is not None:
                self._turns[group.upstream.site_name] = turn + 1
            start = turn % len(members)
            rotated = members[start:] + members[:start]
            firsts.append(rotated[0])
            rest.extend(rotated[1:])
        return firsts + rest

    def describe(self, now: float) -> dict[str, Any]:
        """What ``GET /admin/routes`` shows: the deterministic order, and why the others are left out."""
        return {
            "policy": self.policy,
            "order": [site.name for site in self.candidates(now, None)],
            "unavailable": {site.name: site.state(now) for site in self.sites if not site.routable(now)},
        }
