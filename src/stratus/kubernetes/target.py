"""A Kubernetes site as the renderers and the client need it: context, namespace, image, version."""

from __future__ import annotations

from dataclasses import dataclass

from stratus.config import Site
from stratus.errors import ConfigError

__all__ = ["Target", "kubernetes_targets"]


@dataclass(frozen=True)
class Target:
    """One site whose compute is a Kubernetes context."""

    site: str
    provider: str
    context: str
    namespace: str
    image: str
    kubernetes_version: str
    operators: frozenset[str] = frozenset()
    kubeconfig: str | None = None
    work_claim: str | None = None
    storage: str = ""

    @classmethod
    def from_site(cls, name: str, site: Site) -> Target:
        """The target of a ``backend: kubernetes`` site; any other backend is a config error."""
        compute = site.compute
        if compute.backend != "kubernetes" or compute.context is None or compute.image is None:
            raise ConfigError(
                f"site {name!r} does not run on Kubernetes (compute.backend is {compute.backend!r}); "
                "expected backend: kubernetes with a context and an image",
                field=f"sites.{name}.compute.backend",
            )
        return cls(
            site=name,
            provider=site.provider,
            context=compute.context,
            namespace=compute.namespace,
            image=compute.image,
            kubernetes_version=compute.kubernetes_version,
            operators=frozenset(compute.operators),
            kubeconfig=compute.kubeconfig,
            work_claim=compute.work_claim,
            storage=site.storage,
        )


def kubernetes_targets(sites: dict[str, Site], only: list[str] | None = None) -> list[Target]:
    """Every ``backend: kubernetes`` site (or those named in ``only``), in file order."""
    chosen = [n for n in sites if sites[n].compute.backend == "kubernetes"]
    if only:
        unknown = [n for n in only if n not in chosen]
        if unknown:
            raise ConfigError(
                f"no Kubernetes site named {', '.join(map(repr, unknown))}; "
                f"Kubernetes sites: {', '.join(chosen) or 'none'}",
                field="--sites",
            )
        chosen = [n for n in chosen if n in only]
    if not chosen:
        raise ConfigError(
            "the platform file has no site with compute.backend: kubernetes; "
            "add one with a context, namespace and image (docs/kubernetes.md)",
            field="sites",
        )
    return [Target.from_site(n, sites[n]) for n in chosen]
