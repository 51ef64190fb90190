"""A registered model's bytes from wherever a verified copy survives: the registry, else a site's store.

The registry's own artifact file is one copy of a version's ONNX bytes. Stratus also records the file's
SHA-256 on the version, and the sites whose content-addressed stores held those bytes when it was
registered (the run's output replicas, and ``registry.artifacts``); every site store keeps an object
under its hash. So when the registry's file is missing, unreadable, or no longer hashes to what was
registered, any of those stores can stand in for it: each is probed (a dead one costs seconds, not an
SDK's retries), read, and re-hashed, and the first that gives the registered bytes wins. The answer says
where the bytes came from, so a user sees that the registry's copy needs repairing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from stratus.errors import RegistryError, StorageError
from stratus.registry.info import ModelVersionInfo
from stratus.registry.store import Registry, local_name
from stratus.storage import SiteStore, probe

__all__ = ["Downloaded", "SiteOpener", "download_model"]

#: Opens a site's store by name; None when the platform has no such site (any more).
SiteOpener = Callable[[str], SiteStore | None]


@dataclass(frozen=True)
class Downloaded:
    """A version's verified ONNX file on local disk, and where its bytes came from, in words."""

    info: ModelVersionInfo
    path: Path
    origin: str


def download_model(
    registry: Registry,
    info: ModelVersionInfo,
    dest_dir: Path,
    *,
    holders: Iterable[str] = (),
    open_store: SiteOpener | None = None,
) -> Downloaded:
    """The version's file in ``dest_dir``: from an earlier download, the registry, else a site's store.

    ``holders`` are sites known (from the state's manifest) to hold verified bytes; the sites recorded
    on the version are tried after them. Raises :class:`RegistryError` naming every place tried when
    no copy with the registered SHA-256 can be read anywhere.
    """
    cached = registry.cached(info, dest_dir)
    if cached is not None:
        try:
            earlier = _origin_file(cached).read_text()
        except OSError:
            earlier = "an earlier download"
        return Downloaded(info, cached, f"{earlier}; hash-checked copy kept at {cached}")
    try:
        path = registry.download_version(info, dest_dir)
    except RegistryError as exc:
        lost = exc
    else:
        return _remember(Downloaded(info, path, f"the registry's artifact store ({registry.shown_uri})"))
    sites = list(dict.fromkeys([*holders, *info.onnx_sites]))
    if info.onnx_sha256 is None or open_store is None or not sites:
        raise RegistryError(
            f"{lost.detail}; and no site store is known to hold a copy of {info.uri}",
            tracking_uri=registry.shown_uri,
            model=info.name,
        ) from lost
    target = local_name(info, Path(dest_dir))
    failures: list[str] = []
    for site in sites:
        why = _fetch(info.onnx_sha256, site, open_store, target)
        if why is None:
            tried = f", after {'; '.join(failures)}" if failures else ""
            origin = f"site {site}'s store, sha256 checked{tried} (the registry's copy failed: {lost.detail})"
            return _remember(Downloaded(info, target, origin))
        failures.append(f"{site}: {why}")
    raise RegistryError(
        f"no verified copy of {info.uri} (sha256 {info.onnx_sha256}) is left anywhere tried: the "
        f"registry's artifact store failed ({lost.detail}); site stores: {'; '.join(failures)}. "
        "Restore a site's store, or re-register the model",
        tracking_uri=registry.shown_uri,
        model=info.name,
    ) from lost


def _fetch(sha256: str, site: str, open_store: SiteOpener, target: Path) -> str | None:
    """Fetch ``sha256`` from ``site`` to ``target`` (hash-checked); None when it worked, else why not."""
    try:
        store = open_store(site)
        if store is None:
            return "not a site of the platform file"
        health = probe(store)
        if not health.reachable:
            return f"unreachable ({health.detail})"
        if not store.has(sha256):
            return "does not hold it"
        store.fetch(sha256, target)
    except StorageError as exc:
        return exc.detail
    return None


def _origin_file(path: Path) -> Path:
    return path.with_name(f"{path.name}.origin")


def _remember(got: Downloaded) -> Downloaded:
    """Keep the origin beside the file: a later use of the copy (a detached server) can still say it."""
    _origin_file(got.path).write_text(got.origin)
    return got
