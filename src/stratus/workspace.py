"""A platform file and its ``.stratus/`` folder: the one place that knows the folder's layout.

Every command and the SDK's :func:`stratus.runner.run_file` start from a Workspace; what it gives
(the parsed platform, a pipeline checked against it, the state repository, the catalog, the sites'
stores) is loaded on first use and kept, so a command parses each file once and pays only for what it
touches. This module imports nothing heavy at import time: ``stratus runs ls`` and ``stratus --help``
must not load pydantic or SQLAlchemy.

Layout, beside the platform file::

    .stratus/
      state.db        runs, attempts, artifacts, ledger (unless $STRATUS_STATE_URL names another)
      runs/           one folder per run, step and attempt
      catalog/        imported catalogs (stratus catalog import)
      serve/          one folder per deployment (stratus serve)
      serve/models/registry/   models downloaded from the registry to serve or promote
      sandbox/        the local sandbox's servers and data (stratus sandbox)
      mlflow.db, mlartifacts/  the embedded model registry (no registry.tracking_uri)
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from stratus.config.locate import resolve_platform_path
from stratus.site_stores import SiteStores
from stratus.state.location import Layout, state_url

if TYPE_CHECKING:  # each loads pydantic, SQLAlchemy, the catalog or MLflow: only commands that use them pay
    from stratus.catalog import Catalog
    from stratus.config import Pipeline, Platform
    from stratus.registry import Registry
    from stratus.state import Database, Repository
    from stratus.storage import SiteStore

__all__ = ["Workspace"]


class Workspace(Layout):
    """``platform_file`` and the ``.stratus/`` folder beside it; ``state_url`` overrides the database.

    Nothing is read or created until asked for: a Workspace for a file that does not exist is fine
    until its :attr:`platform` is loaded (which then fails with the loader's ConfigError naming it).
    """

    def __init__(self, platform_file: Path, *, state_url: str | None = None) -> None:
        super().__init__(platform_file)
        self.explicit_state_url = state_url  # a --state-url flag; $STRATUS_STATE_URL is read when needed
        self._pipelines: dict[Path, Pipeline] = {}

    @classmethod
    def find(
        cls, platform: Path | None = None, pipeline: Path | None = None, *, state_url: str | None = None
    ) -> Workspace:
        """The workspace of ``--platform``, else ``$STRATUS_PLATFORM``, else ``stratus.yaml`` beside the
        pipeline, else in the working directory (ConfigError when none is found)."""
        return cls(resolve_platform_path(platform, pipeline), state_url=state_url)

    def __repr__(self) -> str:
        return f"Workspace({str(self.platform_file)!r})"

    # -- what is loaded from it, on first use ------------------------------------------------------

    @cached_property
    def platform(self) -> Platform:
        """The platform file, parsed and checked (once)."""
        from stratus.config import load_platform

        return load_platform(self.platform_file)

    def pipeline(self, path: Path) -> Pipeline:
        """The pipeline file at ``path``, parsed and checked against :attr:`platform` (once per file)."""
        from stratus.config import load_pipeline

        key = path.resolve()
        if key not in self._pipelines:
            self._pipelines[key] = load_pipeline(path, self.platform)
        return self._pipelines[key]

    @cached_property
    def catalog(self) -> Catalog:
        """The bundled catalog with the tables imported into :attr:`catalog_dir` in their place."""
        from stratus.catalog import Catalog

        return Catalog.load(self.catalog_dir)

    def state_url(self) -> str:
        """The flag's URL, else ``$STRATUS_STATE_URL``, else :attr:`state_file` (its folder is created)."""
        return state_url(self.platform_file, self.explicit_state_url)

    @cached_property
    def database(self) -> Database:
        """The state database (created with its tables on first use)."""
        from stratus.state import open_database

        return open_database(self.state_url())

    @cached_property
    def repository(self) -> Repository:
        """Runs, attempts and artifacts in :attr:`database`."""
        from stratus.state import Repository

        return Repository(self.database)

    def stores(self, names: list[str] | None = None) -> SiteStores:
        """The named sites' stores (all by default), each opened on first use; a name the platform does
        not have is a KeyError."""
        return SiteStores(self.platform, self.base_dir, names)

    def store(self, site: str) -> SiteStore | None:
        """``site``'s store, opened now; None when the platform has no such site."""
        return self.stores([site])[site] if site in self.platform.sites else None

    @property
    def tracking_uri(self) -> str | None:
        """The platform's ``registry.tracking_uri``; None: the embedded registry in :attr:`state_dir`."""
        return self.platform.registry.tracking_uri if self.platform.registry else None

    def registry(self, tracking_uri: str | None = None) -> Registry:
        """The registry at ``tracking_uri`` (a flag), else the platform's, else the embedded one."""
        from stratus.registry import Registry

        uri = tracking_uri if tracking_uri is not None else self.tracking_uri
        return Registry.open(uri, self.state_dir)
