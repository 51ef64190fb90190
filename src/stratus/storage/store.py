"""A site's content-addressed object store: publish, fetch, verify and list artifacts by SHA-256.

Objects live at ``<root>/objects/sha256/<first 2 hex>/<sha256>``, so a name is a promise about the bytes
and two sites agree on what they hold without comparing them. Every vendor exception is translated into
:class:`StorageError` naming the site and URL where it enters; blocking methods drive the async backends
on fsspec's shared I/O loop, so the cloud SDKs and our transfers use one event loop and one pool.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from fsspec.asyn import get_loop, sync

from stratus.errors import StorageError
from stratus.redact import display_url, register_options, register_url
from stratus.storage.backend import Backend, LocalBackend, MiB
from stratus.storage.opener import locate
from stratus.storage.residency import allows
from stratus.storage.timeouts import Timeouts
from stratus.storage.transfer import IntegrityError, transfer

__all__ = ["ObjectInfo", "SiteStore", "check_residency", "hash_file", "open_store", "run"]

T = TypeVar("T")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ObjectInfo:
    """What a store holds under one content address."""

    sha256: str
    size_bytes: int


def run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on fsspec's I/O loop from blocking code (never from the loop itself)."""
    result: T = sync(get_loop(), factory)
    return result


def hash_file(path: Path) -> str:
    """SHA-256 of a local file, read in 1 MiB blocks (bounded memory)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MiB):
            h.update(block)
    return h.hexdigest()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PermissionError):
        return f"access denied ({exc}); check the credentials in the site's storage options"
    if isinstance(exc, FileNotFoundError):
        return f"not found ({exc}); does the bucket or container exist?"
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


class SiteStore:
    """One site's object store. Construct with :func:`open_store`."""

    def __init__(self, site: str, url: str, backend: Backend, root: str, jurisdiction: str | None) -> None:
        self.site = site
        self.url = display_url(url)  # for messages: a password in the URL never leaves open_store
        self.backend = backend
        self.root = root.rstrip("/")
        self.jurisdiction = jurisdiction.upper() if jurisdiction else None

    def __repr__(self) -> str:
        return f"SiteStore(site={self.site!r}, url={self.url!r}, jurisdiction={self.jurisdiction!r})"

    # -- naming and errors ---------------------------------------------------------------------------

    def key(self, sha256: str) -> str:
        """The backend key of an object; raises StorageError on a malformed digest."""
        if not _SHA256.match(sha256):
            raise self.error(f"{sha256!r} is not a SHA-256 hex digest (64 lowercase hex characters)")
        return f"{self.root}/objects/sha256/{sha256[:2]}/{sha256}"

    @property
    def tmp_prefix(self) -> str:
        """Where staging files live for stores that stage under a key (local files)."""
        return f"{self.root}/tmp"

    def error(self, message: str) -> StorageError:
        """A StorageError that names this site and URL."""
        return StorageError(message, site=self.site, url=self.url)

    @contextmanager
    def translating(self, action: str) -> Iterator[None]:
        """Turn any vendor exception inside the block into a StorageError naming site, URL and action."""
        try:
            yield
        except StorageError:
            raise
        except IntegrityError as exc:
            raise self.error(f"{action}: {exc}") from exc
        except Exception as exc:
            raise self.error(f"{action} failed: {_describe(exc)}") from exc

    # -- async primitives, shared by copy and replication --------------------------------------------

    async def size_async(self, sha256: str) -> int | None:
        """Size of the object, or None when absent."""
        return await self.backend.size(self.key(sha256))

    async def rehash_async(self, sha256: str, size: int) -> str:
        """SHA-256 of the stored bytes, read back in parallel ranged parts."""
        key = self.key(sha256)
        return await transfer(None, size, lambda s, e: self.backend.read(key, s, e), None, None)

    async def holds_async(self, sha256: str, size_bytes: int | None = None) -> bool:
        """See :meth:`holds`: the only evidence that lets a writer skip writing these bytes again."""
        size = await self.size_async(sha256)
        if size is None or (size_bytes is not None and size != size_bytes):
            return False
        return await self.rehash_async(sha256, size) == sha256

    # -- the contract --------------------------------------------------------------------------------

    def info(self, sha256: str) -> ObjectInfo | None:
        """Size of the object under ``sha256``, or None when the store does not hold it."""
        with self.translating(f"looking up {sha256}"):
            size = run(lambda: self.size_async(sha256))
        return None if size is None else ObjectInfo(sha256, size)

    def has(self, sha256: str, size_bytes: int | None = None) -> bool:
        """Present (and, when ``size_bytes`` is given, of that size: a short object is not a copy).

        A cheap check that proves nothing about the bytes (a flipped bit keeps the size): before skipping
        a write or vouching for a replica, use :meth:`holds`.
        """
        found = self.info(sha256)
        return found is not None and (size_bytes is None or found.size_bytes == size_bytes)

    def holds(self, sha256: str, size_bytes: int | None = None) -> bool:
        """Present, of ``size_bytes`` when given, and its stored bytes hash to ``sha256`` (read back)."""
        with self.translating(f"checking {sha256}"):
            return run(lambda: self.holds_async(sha256, size_bytes))

    def publish(self, local: Path, residency: frozenset[str] = frozenset()) -> ObjectInfo:
        """Store a local file under its SHA-256; atomic (nothing visible unless whole and verified).

        An object already under that address is kept only when its bytes hash to it; a corrupt or short
        one is replaced, so publishing again is how a rerun heals a damaged single replica.
        """
        check_residency(self, residency, f"{local}")
        try:
            size = local.stat().st_size
            sha = hash_file(local)
        except OSError as exc:
            raise self.error(f"cannot read {local} to publish it: {exc}") from exc
        if self.holds(sha, size):
            return ObjectInfo(sha, size)  # present and re-read: a corrupt copy is written over below
        source = LocalBackend()
        with self.translating(f"publishing {local} as {sha}"):
            try:
                run(
                    lambda: transfer(
                        sha, size, lambda s, e: source.read(str(local), s, e), self.backend, self.key(sha)
                    )
                )
            except IntegrityError as exc:
                raise self.error(f"{local} changed while it was being published ({exc}); retry") from exc
        return ObjectInfo(sha, size)

    def fetch(self, sha256: str, local: Path) -> None:
        """Stream the object to ``local`` (replaced atomically), verifying its hash on the way."""
        size = self._require(sha256)
        local.parent.mkdir(parents=True, exist_ok=True)
        sink = LocalBackend(tmp_dir=local.parent)
        key = self.key(sha256)
        with self.translating(f"fetching {sha256} to {local}"):
            try:
                run(
                    lambda: transfer(
                        sha256, size, lambda s, e: self.backend.read(key, s, e), sink, str(local)
                    )
                )
            except IntegrityError as exc:
                raise self.error(
                    f"hash mismatch fetching {sha256}: {exc}; the stored copy is corrupt, "
                    "run repair from a verified replica"
                ) from exc

    def rehash(self, sha256: str) -> str:
        """Read the stored bytes back and hash them (what verify and repair trust, not metadata)."""
        size = self._require(sha256)
        with self.translating(f"rehashing {sha256}"):
            return run(lambda: self.rehash_async(sha256, size))

    def remove(self, sha256: str) -> None:
        """Delete the object; removing one that is absent is not an error."""
        with self.translating(f"removing {sha256}"):
            key = self.key(sha256)
            run(lambda: self.backend.delete(key))

    def objects(self) -> Iterator[ObjectInfo]:
        """Every object the store holds (keys that are not content addresses are skipped)."""
        with self.translating("listing objects"):
            found = run(lambda: self.backend.list(f"{self.root}/objects/sha256"))
        for key, size in sorted(found):
            name = key.rsplit("/", 1)[-1]
            if _SHA256.match(name):
                yield ObjectInfo(name, size)

    def open_read(self, sha256: str) -> BinaryIO:
        """A blocking reader over the stored bytes, for streaming consumers; the caller closes it."""
        self._require(sha256)
        with self.translating(f"opening {sha256}"):
            return self.backend.open_read(self.key(sha256))

    def sweep(self, max_age_s: float | None = None) -> int:
        """Remove staging debris older than ``max_age_s`` (temp files, orphaned multipart uploads).

        The default is the backend's own ``debris_age_s``: safe while other processes write to the store
        (a local writer's file is locked, so a minute suffices; an S3 upload only says when it began).
        """
        age = self.backend.debris_age_s if max_age_s is None else max_age_s
        with self.translating("sweeping staging debris"):
            return run(lambda: self.backend.sweep(f"{self.root}/objects", self.tmp_prefix, age))

    def _require(self, sha256: str) -> int:
        found = self.info(sha256)
        if found is None:
            raise self.error(f"object {sha256} is not in this store")
        return found.size_bytes


def check_residency(store: SiteStore, residency: frozenset[str], what: str) -> None:
    """Refuse to place data bound to ``residency`` jurisdictions at a site outside them."""
    if allows(store.jurisdiction, residency):
        return
    bound = "/".join(sorted(residency))
    where = store.jurisdiction or "no jurisdiction declared"
    raise store.error(
        f"refusing to copy {bound}-resident data to site {store.site} ({where}): "
        f"{what} may only be stored at {bound} sites"
    )


def open_store(
    site: str,
    url: str,
    options: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
    jurisdiction: str | None = None,
    timeouts: Timeouts | None = None,
) -> SiteStore:
    """Open a site's store from its URL (file, memory, s3, gs/gcs, az/abfs) and fsspec options.

    Credentials in ``options`` and the URL are registered with :mod:`stratus.redact` first, so no
    message about this store (ours or a vendor's) can show them. ``timeouts`` bounds network stores.
    """
    register_options(options)
    register_url(url)
    try:
        location = locate(url, options, base_dir, timeouts)
    except StorageError as exc:
        raise StorageError(exc.detail, site=site, url=url) from exc.__cause__
    return SiteStore(site, url, location.backend, location.root, jurisdiction)
