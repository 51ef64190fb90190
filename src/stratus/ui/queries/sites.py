"""The platform's sites with the health of their stores right now and the endpoints serving from them.

Health is one probe per site (:func:`stratus.storage.health.probe_all`), all at once and bounded by a
short timeout, so a dead site costs the page a few seconds at most and never an SDK's retry budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stratus.errors import StorageError
from stratus.redact import display_url, redact
from stratus.storage import SiteStore, probe_all
from stratus.workspace import Workspace

__all__ = ["PROBE_TIMEOUT_S", "SiteView", "site_views"]

#: How long the sites page waits for a store to answer its probe (the CLI's default is 5 s; a page
#: should not hang that long on one dead endpoint).
PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class SiteView:
    """One row of the sites table: where the site is, what it runs on, whether its store answers."""

    name: str
    provider: str
    region: str
    jurisdiction: str | None
    continent: str | None
    backend: str
    storage: str
    health: str  # "up", "unreachable" or "not probed"
    health_detail: str
    probe_ms: float | None
    endpoints: tuple[str, ...]


def site_views(
    workspace: Workspace,
    endpoints: Mapping[str, Sequence[str]] | None = None,
    *,
    probe: bool = True,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> list[SiteView]:
    """Every site of the workspace's platform in file order; ``endpoints`` (site → URLs) from the serving
    records."""
    platform = workspace.platform
    stores = workspace.stores()
    opened: list[SiteStore] = []
    failed: dict[str, str] = {}
    if probe:
        for name in platform.sites:
            try:
                opened.append(stores[name])
            except StorageError as exc:  # cannot even be opened (SDK missing, bad options): say why
                failed[name] = exc.detail
    health = probe_all(opened, timeout_s) if opened else {}
    views = []
    for name, site in platform.sites.items():
        found = health.get(name)
        if found is not None:
            state, detail, ms = found.state, found.detail, round(found.elapsed_s * 1000, 1)
        elif name in failed:
            state, detail, ms = "unreachable", failed[name], None
        else:
            state, detail, ms = "not probed", "", None
        views.append(
            SiteView(
                name=name,
                provider=site.provider,
                region=site.region,
                jurisdiction=site.jurisdiction,
                continent=site.continent,
                backend=site.compute.backend,
                storage=display_url(site.storage),
                health=state,
                health_detail=redact(detail),
                probe_ms=ms,
                endpoints=tuple((endpoints or {}).get(name, ())),
            )
        )
    return views
