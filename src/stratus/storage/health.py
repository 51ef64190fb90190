"""Site health: is a store answering right now? One cheap request per site, bounded by a short timeout.

A store that does not answer in time is *unreachable*: nothing can be learnt about what it holds, so
callers skip its objects instead of calling them missing (which would trigger pointless repairs and, worse,
hide the outage). Probing once per site before a batch of work is what keeps a command from paying the
SDKs' retry budgets once per object when a site is down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

from stratus.storage.store import SiteStore, run

__all__ = ["DEFAULT_PROBE_TIMEOUT_S", "SiteHealth", "probe", "probe_all", "probe_async"]

#: How long a store gets to answer one request before it counts as unreachable. Loopback and cloud
#: stores answer a HEAD in milliseconds to a few hundred; five seconds rides out a slow one without
#: letting a dead endpoint (or an SDK's retry loop against one) stall a command.
DEFAULT_PROBE_TIMEOUT_S = 5.0

#: The key probed: under the store's root, never a content address, so never an object anyone wrote.
_PROBE_NAME = "objects/.stratus-health"


@dataclass(frozen=True)
class SiteHealth:
    """What one probe of a site's store found: reachable or not, why not, and how long it took."""

    site: str
    reachable: bool
    detail: str
    elapsed_s: float

    @property
    def state(self) -> str:
        """``up`` or ``unreachable``, the word the CLI and JSON output use."""
        return "up" if self.reachable else "unreachable"


async def probe_async(store: SiteStore, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> SiteHealth:
    """Ask the store for the size of a key that does not exist: any definite answer means it is up.

    "Not found" is an answer; a refused or reset connection, a 5xx, denied access or no answer within
    ``timeout_s`` is not (the request is cancelled, so a retrying SDK does not keep the caller waiting).
    """
    started = time.monotonic()
    try:
        await asyncio.wait_for(store.backend.size(f"{store.root}/{_PROBE_NAME}"), timeout_s)
    except TimeoutError:
        detail = f"no answer within {timeout_s:g} s"
    except Exception as exc:  # every SDK fails its own way; all of them mean "cannot use it now"
        detail = f"{type(exc).__name__}: {str(exc) or repr(exc)}"
    else:
        return SiteHealth(store.site, True, "answered", time.monotonic() - started)
    return SiteHealth(store.site, False, detail, time.monotonic() - started)


def probe(store: SiteStore, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> SiteHealth:
    """Blocking :func:`probe_async`."""
    return run(lambda: probe_async(store, timeout_s))


def probe_all(
    stores: Iterable[SiteStore], timeout_s: float = DEFAULT_PROBE_TIMEOUT_S
) -> dict[str, SiteHealth]:
    """Probe every store at once; the whole call takes at most about ``timeout_s``."""
    chosen = list(stores)

    async def main() -> list[SiteHealth]:
        return await asyncio.gather(*(probe_async(store, timeout_s) for store in chosen))

    return {health.site: health for health in run(main)} if chosen else {}
