"""Who this process is in a multi-site (``kind: distributed``) step, read from the runner's environment.

The runner starts one step worker per participant and tells each, through ``STRATUS_*`` variables, its
rank, the rank-0 rendezvous address and the sites taking part. This module only parses that contract; it
imports no torch, so the runner (which has no torch) can import it to build and check the same values.

========================  ==========================================================  =========
variable                  meaning                                                     required
========================  ==========================================================  =========
``STRATUS_RANK``          this process's rank, ``0 .. world_size - 1``                yes
``STRATUS_WORLD_SIZE``    number of ranks (≥ 1)                                       yes
``STRATUS_COORDINATOR``   ``host:port`` (``[v6]:port``) where rank 0 listens          yes
``STRATUS_SITES``         comma-separated site names, index = rank                    yes
``STRATUS_SITE``          this rank's site; must equal ``STRATUS_SITES[rank]``        no
``STRATUS_DIST_TIMEOUT_S`` seconds for rendezvous, each collective and teardown       no (60)
========================  ==========================================================  =========

None of the four required variables set means "not distributed"; some but not all is an error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from stratus.errors import ExecutorError
from stratus.step import (
    ENV_COORDINATOR,
    ENV_RANK,
    ENV_SITE,
    ENV_SITES,
    ENV_TIMEOUT,
    ENV_WORLD_SIZE,
)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "ENV_COORDINATOR",
    "ENV_RANK",
    "ENV_SITE",
    "ENV_SITES",
    "ENV_TIMEOUT",
    "ENV_WORLD_SIZE",
    "Cluster",
    "DistributedError",
]

DEFAULT_TIMEOUT_S = 60.0
_REQUIRED = (ENV_RANK, ENV_WORLD_SIZE, ENV_COORDINATOR, ENV_SITES)


class DistributedError(ExecutorError):
    """A distributed step's environment is malformed, or its peers could not be reached or were lost.

    A subclass of :class:`ExecutorError` so the runner treats it like any failed step; the message names
    this rank and site, and the variable or peer at fault.
    """


@dataclass(frozen=True)
class Cluster:
    """This rank's place in a distributed step: rank, peers' sites, rendezvous address, timeout."""

    rank: int
    world_size: int
    coordinator: str
    sites: tuple[str, ...]
    site: str
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise DistributedError(f"world size must be at least 1, got {self.world_size}", site=self.site)
        if not 0 <= self.rank < self.world_size:
            raise DistributedError(
                f"rank {self.rank} is outside 0..{self.world_size - 1} (world size {self.world_size})",
                site=self.site,
            )
        if len(self.sites) != self.world_size:
            raise DistributedError(
                f"{len(self.sites)} sites ({', '.join(self.sites)}) for world size {self.world_size}: "
                "give one site per rank, in rank order",
                site=self.site,
            )
        if self.sites[self.rank] != self.site:
            raise DistributedError(
                f"rank {self.rank} runs at site {self.site!r}, but the site list puts "
                f"{self.sites[self.rank]!r} at index {self.rank}",
                site=self.site,
            )
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise DistributedError(f"timeout must be a positive number of seconds, got {self.timeout_s}")
        _split_address(self.coordinator)  # raises on a malformed address

    @property
    def host(self) -> str:
        """The coordinator's host, without IPv6 brackets."""
        return _split_address(self.coordinator)[0]

    @property
    def port(self) -> int:
        """The coordinator's TCP port."""
        return _split_address(self.coordinator)[1]

    @property
    def is_coordinator(self) -> bool:
        """Rank 0 hosts the rendezvous and is the one whose outputs the runner publishes."""
        return self.rank == 0

    def describe(self) -> str:
        """``rank 1/2 (site aws-eu)``: how messages name this process."""
        return f"rank {self.rank}/{self.world_size} (site {self.site})"

    def peers(self) -> str:
        """The other ranks and their sites, for messages about a lost peer."""
        others = [f"rank {r} ({s})" for r, s in enumerate(self.sites) if r != self.rank]
        return ", ".join(others) or "none"

    def env(self) -> dict[str, str]:
        """The variables that make :meth:`from_env` return this cluster: what a launcher sets per rank."""
        return {
            ENV_RANK: str(self.rank),
            ENV_WORLD_SIZE: str(self.world_size),
            ENV_COORDINATOR: self.coordinator,
            ENV_SITES: ",".join(self.sites),
            ENV_SITE: self.site,
            ENV_TIMEOUT: f"{self.timeout_s:g}",
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Cluster | None:
        """The cluster the runner described in ``env`` (default ``os.environ``), or None if not distributed.

        Raises :class:`DistributedError` naming the variable and the expected form when a value is
        malformed or only some of the required variables are set.
        """
        env = os.environ if env is None else env
        present = [name for name in _REQUIRED if env.get(name, "").strip()]
        if not present:
            return None
        missing = [name for name in _REQUIRED if name not in present]
        if missing:
            raise DistributedError(
                f"distributed step environment is incomplete: {', '.join(present)} set but "
                f"{', '.join(missing)} missing; the runner sets all of {', '.join(_REQUIRED)}"
            )
        rank = _int(env, ENV_RANK)
        world_size = _int(env, ENV_WORLD_SIZE)
        sites = tuple(s.strip() for s in env[ENV_SITES].split(","))
        if any(not s for s in sites):
            raise DistributedError(f"{ENV_SITES}={env[ENV_SITES]!r} has an empty site name; expected 'a,b,c'")
        # A site may appear more than once: several ranks at one site (a Ray site's placement group).
        site = env.get(ENV_SITE, "").strip()
        if not site:
            site = sites[rank] if 0 <= rank < len(sites) else ""
        timeout_s = _float(env, ENV_TIMEOUT, DEFAULT_TIMEOUT_S)
        coordinator = env[ENV_COORDINATOR].strip()
        try:
            _split_address(coordinator)
        except DistributedError as exc:
            raise DistributedError(f"{ENV_COORDINATOR}: {exc.detail}", site=site or None) from None
        return cls(rank, world_size, coordinator, sites, site, timeout_s)


def _int(env: Mapping[str, str], name: str) -> int:
    raw = env[name].strip()
    try:
        return int(raw)
    except ValueError:
        raise DistributedError(f"{name}={raw!r} is not an integer") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise DistributedError(f"{name}={raw!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise DistributedError(f"{name}={raw!r} must be a positive number of seconds")
    return value


def _split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port), or DistributedError saying what form is expected."""
    host, sep, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # a bare IPv6 address is ambiguous: which colon starts the port?
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise DistributedError(
            f"coordinator address {address!r} is not 'host:port' (IPv6 as '[addr]:port', port 1-65535)"
        )
    return host, int(port_text)
