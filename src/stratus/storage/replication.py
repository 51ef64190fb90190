"""Replicas across sites: dual-write (acknowledged only once every replica verifies), verify, repair.

The promise the runner builds on: a dual-write that returns has put the whole object, under its content
address, on every store it was given; one that raises names the site and URL that failed and leaves no
half-written object there. ``verify`` trusts only a re-read of the bytes, never metadata, and ``repair``
restores missing or corrupt replicas from one that verifies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from stratus.errors import StorageError
from stratus.storage.copy import copy_async, copy_many
from stratus.storage.store import ObjectInfo, SiteStore, check_residency, run

__all__ = ["ReplicaStatus", "dual_write", "repair", "verify"]

ReplicaStatus = Literal["verified", "missing", "corrupt"]


async def _status(store: SiteStore, sha256: str) -> ReplicaStatus:
    # A store that cannot be read cannot vouch for the bytes: report it missing, so repair retries it.
    try:
        size = await store.size_async(sha256)
        if size is None:
            return "missing"
        digest = await store.rehash_async(sha256, size)
    except Exception:  # unreachable and unreadable both mean "not shown to hold it"
        return "missing"
    return "verified" if digest == sha256 else "corrupt"


async def _holds(store: SiteStore, info: ObjectInfo, rehash: bool) -> bool:
    try:
        size = await store.size_async(info.sha256)
        if size != info.size_bytes:
            return False
        return not rehash or await store.rehash_async(info.sha256, size) == info.sha256
    except Exception:  # same reasoning as _status
        return False


async def _scrub(store: SiteStore, info: ObjectInfo) -> None:
    """After a failed write, delete an object at the final key that does not verify (best effort)."""
    try:
        if not await _holds(store, info, rehash=True):
            await store.backend.delete(store.key(info.sha256))
    except Exception:  # the store may be down; verify/repair will find what is left
        pass


def dual_write(
    local: Path, stores: Sequence[SiteStore], residency: frozenset[str] = frozenset(), *, rehash: bool = False
) -> ObjectInfo:
    """Publish ``local`` to ``stores[0]`` and copy it to the others; return only if every replica verifies.

    Residency is checked for every store before any byte moves. Each replica is checked for size after
    writing (``rehash=True`` also re-reads it). On failure, StorageError names every failed site and URL.
    """
    if not stores:
        raise StorageError(f"dual-write of {local} needs at least one store")
    for store in stores:
        check_residency(store, residency, f"{local}")
    primary, others = stores[0], list(stores[1:])
    info = primary.publish(local, residency)

    async def replicate() -> list[BaseException | None]:
        async def one(dst: SiteStore) -> BaseException | None:
            try:
                await copy_async(info.sha256, primary, dst)
            except Exception as exc:  # collected and reported with the site below
                return exc
            if not await _holds(dst, info, rehash):
                return dst.error(f"{info.sha256} did not verify after writing")
            return None

        results = await asyncio.gather(*(one(dst) for dst in others))
        if not await _holds(primary, info, rehash):
            results.insert(0, primary.error(f"{info.sha256} did not verify after publishing"))
        else:
            results.insert(0, None)
        failed = [store for store, exc in zip(stores, results, strict=True) if exc is not None]
        await asyncio.gather(*(_scrub(store, info) for store in failed))
        return results

    results = run(replicate)
    failed = [(store, exc) for store, exc in zip(stores, results, strict=True) if exc is not None]
    if not failed:
        return info
    store, exc = failed[0]
    held = [s.site for s, e in zip(stores, results, strict=True) if e is None]
    reason = exc.detail if isinstance(exc, StorageError) else f"{type(exc).__name__}: {exc}"
    others_failed = ", ".join(f"{s.site} ({s.url})" for s, _ in failed[1:])
    raise StorageError(
        f"dual-write of {local} ({info.sha256}) failed: {reason}"
        + (f"; also failed: {others_failed}" if others_failed else "")
        + f"; verified replicas: {', '.join(held) or 'none'}",
        site=store.site,
        url=store.url,
    ) from exc


def verify(sha256: str, stores: Sequence[SiteStore]) -> dict[str, ReplicaStatus]:
    """Re-read and hash every replica in parallel: verified, missing (or unreachable), or corrupt."""
    for store in stores:
        store.key(sha256)  # a malformed digest is an error, not "missing everywhere"

    async def check() -> list[ReplicaStatus]:
        return await asyncio.gather(*(_status(store, sha256) for store in stores))

    return {store.site: status for store, status in zip(stores, run(check), strict=True)}


def repair(
    sha256: str, stores: Sequence[SiteStore], residency: frozenset[str] = frozenset()
) -> dict[str, int]:
    """Re-copy missing or corrupt replicas from a verified one; bytes moved per site (0 where fine).

    Raises StorageError when no replica verifies (nothing trustworthy to copy from) or a copy fails.
    """
    status = verify(sha256, stores)
    sources = [store for store in stores if status[store.site] == "verified"]
    if not sources:
        names = ", ".join(f"{s.site} ({status[s.site]})" for s in stores)
        raise StorageError(
            f"cannot repair {sha256}: no replica verifies ({names}); restore it from the producing step",
            site=stores[0].site if stores else None,
            url=stores[0].url if stores else None,
        )
    broken = [store for store in stores if status[store.site] != "verified"]
    for store in broken:
        check_residency(store, residency, f"object {sha256}")
    for store in broken:
        if status[store.site] == "corrupt":
            store.remove(sha256)  # the wrong bytes hold the right name: copy would see "present"
    moved = dict.fromkeys((s.site for s in stores), 0)
    counts = copy_many([(sha256, sources[0], store) for store in broken], residency=residency)
    moved.update({store.site: count for store, count in zip(broken, counts, strict=True)})
    for store in broken:
        store.sweep()
    return moved
