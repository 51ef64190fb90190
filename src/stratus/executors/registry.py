"""Which executor runs a site's steps, chosen by the site's ``compute.backend``.

``kubernetes`` runs each step as a Job in the site's context (:mod:`.kubernetes`); it is imported only
when a site uses it, so the ``kubernetes`` extra is needed only then.
"""

from __future__ import annotations

from collections.abc import Callable

from stratus.config import Site
from stratus.errors import ConfigError
from stratus.executors.base import Executor
from stratus.executors.local import LocalExecutor
from stratus.executors.ray_jobs import RayExecutor
from stratus.executors.serverless import ServerlessExecutor

__all__ = ["BACKENDS", "executor_for"]

BACKENDS: dict[str, Callable[[str, Site], Executor]] = {
    "local": lambda name, site: LocalExecutor(name),
    "serverless": lambda name, site: ServerlessExecutor(name, site.compute.serverless),
    "kubernetes": lambda name, site: _kubernetes(name, site),
    "ray": lambda name, site: RayExecutor(name, site.compute.address or ""),
}


def _kubernetes(name: str, site: Site) -> Executor:
    try:
        from stratus.executors.kubernetes import KubernetesExecutor
    except ImportError as exc:
        raise ConfigError(
            f"site {name!r} uses compute.backend 'kubernetes', which needs the kubernetes extra "
            f"(pip install 'stratus[kubernetes]'): {exc}",
            field=f"sites.{name}.compute.backend",
        ) from None
    return KubernetesExecutor.for_site(name, site)


def executor_for(site_name: str, site: Site) -> Executor:
    """The executor for ``site``; a backend not built yet is a config error that says what to use instead."""
    backend = site.compute.backend
    factory = BACKENDS.get(backend)
    if factory is None:
        raise ConfigError(
            f"site {site_name!r} uses compute.backend {backend!r}, which this version cannot run yet; "
            f"use one of: {', '.join(BACKENDS)}",
            field=f"sites.{site_name}.compute.backend",
        )
    return factory(site_name, site)
