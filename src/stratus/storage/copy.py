"""Copying objects between sites: zero bytes when already there, verified bytes when not.

A copy is content-addressed, so "already there" is an object of the right size at the destination key
whose bytes, read back, hash to that key (a corrupt copy there is written over), and a copy that completes
has, by construction, the SHA-256 it is named by (:mod:`.transfer` refuses to commit otherwise).
Between two stores on the same S3 endpoint the service copies server-side; everything else streams through
this process in parts. Many objects move concurrently on one event loop: for thousands of small objects
the cost is per request, so presence is learnt from one listing instead of one HEAD per object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from stratus.errors import StorageError
from stratus.storage.store import SiteStore, check_residency, run
from stratus.storage.transfer import IntegrityError, Reader, transfer

__all__ = ["copy_async", "copy_many", "copy_object"]

#: From this many objects bound for (or coming from) one store, list it once instead of HEAD per object.
_BULK_LISTING = 256
#: Large objects copied at once inside copy_many; each already has its own window of parts in flight.
_LARGE_AT_ONCE = 2


def _reader(store: SiteStore, sha256: str) -> Reader:
    """Reads that fail are the source's fault: name the source site, not the destination."""
    key = store.key(sha256)

    async def read(start: int, end: int) -> bytes:
        with store.translating(f"reading {sha256}"):
            return await store.backend.read(key, start, end)

    return read


async def _sizes(store: SiteStore) -> dict[str, int]:
    with store.translating("listing objects"):
        found = await store.backend.list(f"{store.root}/objects/sha256")
    return {key.rsplit("/", 1)[-1]: size for key, size in found}


async def _size(store: SiteStore, sha256: str, listing: Mapping[str, int] | None) -> int | None:
    if listing is not None:
        return listing.get(sha256)
    with store.translating(f"looking up {sha256}"):
        return await store.size_async(sha256)


async def _verifies(store: SiteStore, sha256: str, size: int, listed: bool) -> bool:
    """Do the stored bytes hash to their address? With ``listed`` the size came from a listing just
    now, so the lookup before the re-read is skipped (one request per object fewer on a re-copy)."""
    with store.translating(f"checking {sha256}"):
        if not listed:
            return await store.holds_async(sha256, size)
        try:
            return await store.rehash_async(sha256, size) == sha256
        except (FileNotFoundError, IntegrityError):  # removed or cut short since the listing
            return False


async def copy_async(
    sha256: str,
    src: SiteStore,
    dst: SiteStore,
    src_listing: Mapping[str, int] | None = None,
    dst_listing: Mapping[str, int] | None = None,
    large: asyncio.Semaphore | None = None,
) -> int:
    size, present = await asyncio.gather(_size(src, sha256, src_listing), _size(dst, sha256, dst_listing))
    if size is None:
        raise src.error(f"object {sha256} is not in this store, so it cannot be copied to site {dst.site}")
    if present == size and await _verifies(dst, sha256, size, dst_listing is not None):
        return 0  # an equal size alone is no copy: a flipped bit keeps it, so the bytes were re-read
    key = dst.key(sha256)
    with dst.translating(f"copying {sha256} from site {src.site} ({src.url})"):
        if dst.backend.same_endpoint(src.backend):
            try:
                await dst.backend.server_copy(src.key(sha256), key)
            except PermissionError:
                pass  # the destination's credentials cannot read the source: stream it instead
            else:
                # The service copied whatever the source holds, rotten or not: read it back to vouch for it.
                if await dst.holds_async(sha256, size):
                    return size
                await dst.backend.delete(key)  # then stream, which names the source if it is corrupt
        try:
            if large is not None and size > dst.backend.part_size:
                async with large:
                    await transfer(sha256, size, _reader(src, sha256), dst.backend, key)
            else:
                await transfer(sha256, size, _reader(src, sha256), dst.backend, key)
        except IntegrityError as exc:
            raise src.error(
                f"the stored bytes of {sha256} do not match their address ({exc}); this replica is corrupt, "
                f"nothing was written to site {dst.site}: repair it from a verified replica"
            ) from exc
    return size


def copy_object(sha256: str, src: SiteStore, dst: SiteStore, residency: frozenset[str] = frozenset()) -> int:
    """Copy one object from ``src`` to ``dst``; returns bytes moved (0 when ``dst`` already holds it).

    Raises StorageError, before moving anything, when ``dst`` is outside a non-empty ``residency``.
    """
    check_residency(dst, residency, f"object {sha256} from site {src.site}")
    return run(lambda: copy_async(sha256, src, dst))


def copy_many(
    items: Sequence[tuple[str, SiteStore, SiteStore]],
    workers: int = 8,
    residency: frozenset[str] = frozenset(),
) -> list[int]:
    """Copy many objects concurrently (``workers`` at once); bytes moved per item, in order.

    Every copy is attempted; if any failed, StorageError names the first failure's site and URL and how
    many failed — the others are complete and verified.
    """
    for sha, src, dst in items:
        check_residency(dst, residency, f"object {sha} from site {src.site}")
    counts: dict[int, int] = {}
    stores: dict[int, SiteStore] = {}
    for _sha, src, dst in items:
        for store in (src, dst):
            counts[id(store)] = counts.get(id(store), 0) + 1
            stores[id(store)] = store
    bulk = [store for ident, store in stores.items() if counts[ident] >= _BULK_LISTING]

    async def main() -> list[int | BaseException]:
        found = await asyncio.gather(*(_sizes(store) for store in bulk))
        listings = {id(store): listing for store, listing in zip(bulk, found, strict=True)}
        slots = asyncio.Semaphore(max(1, workers))
        large = asyncio.Semaphore(_LARGE_AT_ONCE)

        async def one(sha: str, src: SiteStore, dst: SiteStore) -> int:
            async with slots:
                return await copy_async(sha, src, dst, listings.get(id(src)), listings.get(id(dst)), large)

        return await asyncio.gather(*(one(*item) for item in items), return_exceptions=True)

    results = run(main)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        first = failures[0]
        if not isinstance(first, StorageError):
            raise first
        raise StorageError(
            f"{len(failures)} of {len(items)} copies failed; first: {first.detail}",
            site=first.site,
            url=first.url,
        ) from first
    return [r for r in results if isinstance(r, int)]
