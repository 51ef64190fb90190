"""Replicas across sites: quorum writes, verify (verified, missing, corrupt or unreachable), repair.

The promise the runner builds on: a write that returns has put the whole object, under its content
address, on at least its quorum of stores (every store, for :func:`dual_write`) and says which stores did
not get it; one that raises names the site and URL that failed and leaves no half-written object anywhere.
``verify`` trusts only a re-read of the bytes, never metadata, and never calls a replica it could not read
"missing": a store that does not answer is *unreachable*, which says nothing about what it holds.
``repair`` restores missing or corrupt replicas from one that verifies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from stratus.errors import StorageError
from stratus.storage.copy import copy_many
from stratus.storage.health import SiteHealth, probe_all
from stratus.storage.store import ObjectInfo, SiteStore, check_residency, run

__all__ = [
    "ReplicaStatus",
    "Restored",
    "WriteResult",
    "dual_write",
    "quorum_write",
    "repair",
    "restore",
    "verify",
]

ReplicaStatus = Literal["verified", "missing", "corrupt", "unreachable"]


async def _status(store: SiteStore, sha256: str) -> ReplicaStatus:
    # Only a definite "no such object" is missing; a store that fails to answer cannot vouch either way.
    try:
        size = await store.size_async(sha256)
        if size is None:
            return "missing"
        digest = await store.rehash_async(sha256, size)
    except Exception:  # refused, reset, timed out, denied: not a fact about the object
        return "unreachable"
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


@dataclass(frozen=True)
class WriteResult:
    """A replicated write that reached its quorum: which sites hold verified bytes, which did not and why."""

    info: ObjectInfo
    held: tuple[str, ...]
    failed: Mapping[str, str] = field(default_factory=dict)  # site → why it holds no verified copy


def quorum_write(
    local: Path,
    stores: Sequence[SiteStore],
    residency: frozenset[str] = frozenset(),
    *,
    min_held: int | None = None,
    must_hold: Collection[str] = (),
    rehash: bool = False,
    probe_timeout_s: float | None = None,
    health: Mapping[str, SiteHealth] | None = None,
) -> WriteResult:
    """Publish ``local`` to every store at once; acknowledge once ``min_held`` of them verify.

    Each replica is uploaded from the local file (so no store depends on another being up), checked for
    size (``rehash=True`` also re-reads it) and counted only then. ``min_held`` defaults to every store;
    sites in ``must_hold`` must verify whatever the count. With ``probe_timeout_s`` each store is first
    probed (:mod:`.health`; or pass the caller's probes as ``health``) and an unreachable one is not
    written at all, so a dead site costs one short timeout rather than an SDK's retry budget. Residency
    is checked for every store before any byte moves and is never a partial failure. Below quorum,
    StorageError names the failed sites (a failed ``must_hold`` site first, so the caller can tell its
    own site's failure) and the verified ones.
    """
    if not stores:
        raise StorageError(f"dual-write of {local} needs at least one store")
    need = len(stores) if min_held is None else min_held
    if not 1 <= need <= len(stores):
        raise StorageError(f"dual-write of {local}: quorum {need} is not between 1 and {len(stores)} stores")
    for store in stores:
        check_residency(store, residency, f"{local}")
    if health is None:
        health = probe_all(stores, probe_timeout_s) if probe_timeout_s is not None else {}
    down = {site: f"unreachable ({h.detail})" for site, h in health.items() if not h.reachable}
    live = [store for store in stores if store.site not in down]
    with ThreadPoolExecutor(max_workers=max(1, len(live)), thread_name_prefix="dual-write") as pool:
        outcomes = list(pool.map(lambda store: _write_one(local, store, residency, rehash), live))
    infos = [info for info, _ in outcomes if info is not None]
    failed: dict[str, tuple[SiteStore, BaseException]] = {
        store.site: (store, exc) for store, (_, exc) in zip(live, outcomes, strict=True) if exc is not None
    }
    reasons = {**down, **{site: _reason(exc) for site, (_, exc) in failed.items()}}
    held = tuple(store.site for store in stores if store.site not in reasons)
    missing_required = [site for site in must_hold if site in reasons]
    if infos and len(held) >= need and not missing_required:
        return WriteResult(infos[0], held, {s.site: reasons[s.site] for s in stores if s.site in reasons})
    ordered = sorted(
        (store for store in stores if store.site in reasons), key=lambda s: s.site not in missing_required
    )
    first = ordered[0]
    sha = f" ({infos[0].sha256})" if infos else ""
    also = ", ".join(f"{s.site} ({s.url})" for s in ordered[1:])
    quorum = f"; needed {need} of {len(stores)}" if need < len(stores) else ""
    error = StorageError(
        f"dual-write of {local}{sha} failed: {reasons[first.site]}"
        + (f"; also failed: {also}" if also else "")
        + f"; verified replicas: {', '.join(held) or 'none'}{quorum}",
        site=first.site,
        url=first.url,
    )
    cause = failed.get(first.site)
    raise error from (cause[1] if cause else None)


def _write_one(
    local: Path, store: SiteStore, residency: frozenset[str], rehash: bool
) -> tuple[ObjectInfo | None, BaseException | None]:
    """Publish to one store and check what landed; a failure is returned, not raised (one of many)."""
    try:
        info = store.publish(local, residency)
    except Exception as exc:  # reported with its site by the caller
        return None, exc
    if not run(lambda: _holds(store, info, rehash)):
        run(lambda: _scrub(store, info))
        return None, store.error(f"{info.sha256} did not verify after writing")
    return info, None


def _reason(exc: BaseException) -> str:
    return exc.detail if isinstance(exc, StorageError) else f"{type(exc).__name__}: {exc}"


def dual_write(
    local: Path, stores: Sequence[SiteStore], residency: frozenset[str] = frozenset(), *, rehash: bool = False
) -> ObjectInfo:
    """Publish ``local`` to every store; return only if every replica verifies (a quorum of all).

    On failure, StorageError names every failed site and URL (see :func:`quorum_write`).
    """
    return quorum_write(local, stores, residency, rehash=rehash).info


def verify(sha256: str, stores: Sequence[SiteStore]) -> dict[str, ReplicaStatus]:
    """Re-read and hash every replica in parallel: verified, missing, corrupt, or unreachable.

    Each store is asked directly; callers checking many objects probe sites once first
    (:func:`stratus.storage.health.probe_all`) and leave unreachable ones out.
    """
    for store in stores:
        store.key(sha256)  # a malformed digest is an error, not "missing everywhere"

    async def check() -> list[ReplicaStatus]:
        return await asyncio.gather(*(_status(store, sha256) for store in stores))

    return {store.site: status for store, status in zip(stores, run(check), strict=True)}


@dataclass(frozen=True)
class Restored:
    """What :func:`restore` did: the replica it copied from, bytes moved per site, and what it found first."""

    source: str
    moved: dict[str, int]
    found: dict[str, ReplicaStatus]


def restore(sha256: str, stores: Sequence[SiteStore], residency: frozenset[str] = frozenset()) -> Restored:
    """Copy onto every missing or corrupt replica from the first store (in the given order) that verifies.

    Put the cheapest source first. Unreachable stores are left alone: they get nothing and stay out of
    ``moved``. Raises StorageError when no replica verifies (nothing trustworthy to copy from), when a
    target is outside ``residency``, or when a copy fails.
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
    broken = [store for store in stores if status[store.site] in ("missing", "corrupt")]
    for store in broken:
        check_residency(store, residency, f"object {sha256}")
    for store in broken:
        if status[store.site] == "corrupt":
            store.remove(sha256)  # the wrong bytes hold the right name: copy would see "present"
    moved = {s.site: 0 for s in stores if status[s.site] != "unreachable"}
    counts = copy_many([(sha256, sources[0], store) for store in broken], residency=residency)
    moved.update({store.site: count for store, count in zip(broken, counts, strict=True)})
    for store in broken:
        store.sweep()
    return Restored(sources[0].site, moved, status)


def repair(
    sha256: str, stores: Sequence[SiteStore], residency: frozenset[str] = frozenset()
) -> dict[str, int]:
    """Re-copy missing or corrupt replicas from a verified one; bytes moved per site (0 where fine).

    Raises StorageError when no replica verifies, a copy fails, or a store does not answer (it cannot
    be repaired now: run again once it is back).
    """
    done = restore(sha256, stores, residency)
    down = [store for store in stores if done.found[store.site] == "unreachable"]
    if down:
        raise down[0].error(f"cannot repair {sha256} here: the store did not answer; retry once it is back")
    return done.moved
