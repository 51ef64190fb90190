"""A platform's sites' object stores, each opened the first time it is used.

Below the runner, the CLI and the dashboard, which all open stores the same way (relative ``file://``
roots resolve against the platform file's folder); :class:`stratus.workspace.Workspace` hands them out.
Storage and its SDKs import on first open, so holding a ``SiteStores`` costs nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config models import pydantic; storage imports the cloud SDKs' shims
    from stratus.config import Platform
    from stratus.storage import SiteStore

__all__ = ["SiteStores"]


class SiteStores(Mapping[str, "SiteStore"]):
    """The sites' stores by name, each opened the first time it is used.

    A command touches only the stores it needs, so a site it never uses (one whose SDK is missing, whose
    credentials are wrong, whose endpoint is down) can never fail it. Membership and iteration are by
    name and open nothing; a store that fails to open raises StorageError naming its site where it is
    used, and is tried again on the next use. Safe to share between the runner's threads.
    """

    def __init__(self, platform: Platform, base_dir: Path, names: Iterable[str] | None = None) -> None:
        self._sites = dict(platform.sites) if names is None else {n: platform.sites[n] for n in names}
        self._base_dir = base_dir
        self._open: dict[str, SiteStore] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> SiteStore:
        from stratus.storage import Timeouts, open_store

        site = self._sites[name]  # KeyError for a site the platform does not have
        with self._lock:
            if name not in self._open:
                self._open[name] = open_store(
                    name,
                    site.storage,
                    site.storage_options,
                    base_dir=self._base_dir,
                    jurisdiction=site.jurisdiction,
                    timeouts=Timeouts(**site.storage_timeouts.model_dump()),
                )
            return self._open[name]

    def put(self, name: str, store: SiteStore) -> None:
        """Use ``store`` for ``name`` from now on (the runner swaps in one that refuses at once for a site
        that is down for the rest of the run)."""
        with self._lock:
            self._open[name] = store

    def __contains__(self, name: object) -> bool:
        return name in self._sites

    def __iter__(self) -> Iterator[str]:
        return iter(self._sites)

    def __len__(self) -> int:
        return len(self._sites)
