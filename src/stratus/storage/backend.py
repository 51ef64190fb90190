"""The narrow interface every object store implements, and the two in-process ones (local files, memory).

A backend speaks keys and bytes only; naming, hashing and verification live in :mod:`.store` and
:mod:`.transfer`. Every write goes through a *staged* upload that becomes visible under its final key in
one step (``complete``) or not at all (``abort``), which is what makes publishing atomic: a crash or an
exception mid-write can leave staging debris (swept later) but never a truncated object at a final key.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["Backend", "LocalBackend", "MemoryBackend", "Upload"]

MiB = 1 << 20


class Upload(ABC):
    """A staged write: parts may arrive in any order (backends that need order wait for it)."""

    @abstractmethod
    async def part(self, number: int, data: bytes) -> None:
        """Stage part ``number`` (1-based)."""

    @abstractmethod
    async def complete(self) -> None:
        """Make the staged bytes visible under the final key, all at once."""

    @abstractmethod
    async def abort(self) -> None:
        """Throw the staged bytes away; the final key is left as it was. Never raises."""


class Backend(ABC):
    """One object store, addressed by keys (absolute paths inside the store's filesystem)."""

    #: Largest part a transfer sends in one request; also the size up to which objects move in one piece.
    part_size: int = 16 * MiB
    #: Parts in flight per large object (memory bound: part_size × window).
    window: int = 6

    @abstractmethod
    async def size(self, key: str) -> int | None:
        """Size in bytes, or None when the key holds no object."""

    @abstractmethod
    async def read(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the object; raises FileNotFoundError when it is missing."""

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A blocking, buffered reader for streaming consumers (not for use on the event loop)."""

    @abstractmethod
    async def put(self, key: str, data: bytes) -> None:
        """Write a whole object atomically (one request, or stage-and-rename)."""

    @abstractmethod
    async def start_upload(self, key: str) -> Upload:
        """Begin a staged multi-part write to ``key``."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object; a missing one is not an error."""

    @abstractmethod
    async def list(self, prefix: str) -> list[tuple[str, int]]:
        """Every object under ``prefix`` (recursively) as (key, size)."""

    #: Age past which staging debris counts as abandoned when the caller names none. A day: an S3
    #: multipart upload says only when it started, and a large upload over a slow link is alive for hours.
    debris_age_s: float = 86_400.0

    async def sweep(self, prefix: str, tmp_prefix: str, max_age_s: float) -> int:
        """Remove staging debris older than ``max_age_s`` (temp keys, orphaned multipart parts)."""
        return 0

    def same_endpoint(self, other: Backend) -> bool:
        """True when a server-side copy from ``other`` to this backend is possible."""
        return False

    async def server_copy(self, src_key: str, dst_key: str) -> None:
        """Copy inside the service without moving bytes through this process."""
        raise NotImplementedError


class _OrderedUpload(Upload):
    """Adapts a sequential writer to out-of-order parts: each part waits until its predecessors are in.

    Callers bound the parts in flight (the transfer window), so waiting cannot deadlock.
    """

    def __init__(self) -> None:
        self._next = 1
        self._turn = asyncio.Condition()

    async def part(self, number: int, data: bytes) -> None:
        async with self._turn:
            await self._turn.wait_for(lambda: self._next == number)
        await self._write(data)
        async with self._turn:
            self._next += 1
            self._turn.notify_all()

    @abstractmethod
    async def _write(self, data: bytes) -> None: ...


class _LocalUpload(_OrderedUpload):
    """Writes to a temporary file and renames it over the final path on completion (POSIX-atomic).

    The writer holds an exclusive ``flock`` on its temporary file until it is renamed or removed, so a
    sweep can tell a live writer's file from one a killed writer left (the kernel drops the lock of a
    process that dies, even by ``kill -9``).
    """

    def __init__(self, final: Path, tmp: Path) -> None:
        super().__init__()
        self._final = final
        self._tmp = tmp
        tmp.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = tmp.open("wb")
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)

    async def _write(self, data: bytes) -> None:
        assert self._file is not None, "upload already finished"
        await asyncio.to_thread(self._file.write, data)

    async def complete(self) -> None:
        def finish() -> None:
            assert self._file is not None, "upload already finished"
            self._file.flush()
            os.fsync(self._file.fileno())
            self._final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, self._final)  # still locked: no sweep can take the file from under us
            self._file.close()
            self._file = None

        await asyncio.to_thread(finish)

    async def abort(self) -> None:
        self._tmp.unlink(missing_ok=True)
        if self._file is not None:
            self._file.close()
            self._file = None


class LocalBackend(Backend):
    """Plain files; keys are absolute paths. Temporaries go to ``tmp_dir`` (or beside the target)."""

    part_size = 8 * MiB
    window = 4
    #: A live writer's temporary file is locked, so age only has to cover the instant between creating
    #: the file and locking it.
    debris_age_s = 60.0

    def __init__(self, tmp_dir: Path | None = None) -> None:
        self.tmp_dir = tmp_dir

    def _tmp_for(self, final: Path) -> Path:
        folder = self.tmp_dir or final.parent
        return folder / f".{final.name}.{uuid.uuid4().hex}.part"

    async def size(self, key: str) -> int | None:
        try:
            return Path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def read(self, key: str, start: int, end: int) -> bytes:
        def read_range() -> bytes:
            with open(key, "rb") as f:
                f.seek(start)
                return f.read(end - start)

        return await asyncio.to_thread(read_range)

    def open_read(self, key: str) -> BinaryIO:
        return open(key, "rb", buffering=MiB)  # the caller owns and closes the stream

    async def put(self, key: str, data: bytes) -> None:
        upload = await self.start_upload(key)
        try:
            await upload.part(1, data)
            await upload.complete()
        except BaseException:
            await upload.abort()
            raise

    async def start_upload(self, key: str) -> Upload:
        final = Path(key)
        return await asyncio.to_thread(_LocalUpload, final, self._tmp_for(final))

    async def delete(self, key: str) -> None:
        Path(key).unlink(missing_ok=True)

    async def list(self, prefix: str) -> list[tuple[str, int]]:
        def walk() -> list[tuple[str, int]]:
            found: list[tuple[str, int]] = []
            for folder, _dirs, files in os.walk(prefix):
                for name in files:
                    path = os.path.join(folder, name)
                    try:
                        found.append((path, os.stat(path).st_size))
                    except FileNotFoundError:
                        continue  # removed while we walked
            return found

        return await asyncio.to_thread(walk)

    async def sweep(self, prefix: str, tmp_prefix: str, max_age_s: float) -> int:
        cutoff = time.time() - max_age_s
        found = await self.list(tmp_prefix)
        removed = [path for path, _size in found if path.endswith(".part") and _abandoned(path, cutoff)]
        return len(removed)


def _abandoned(path: str, cutoff: float) -> bool:
    """Remove a temporary file last written before ``cutoff`` that no writer holds locked; True if removed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # gone (renamed by its writer, removed by another sweep) or not ours to open
        return False
    try:
        if os.fstat(fd).st_mtime > cutoff:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer holds it
        os.unlink(path)  # under our lock: its writer is dead, and names are never reused
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)


class _MemoryUpload(_OrderedUpload):
    def __init__(self, commit: Callable[[bytes], None]) -> None:
        super().__init__()
        self._buffer: io.BytesIO | None = io.BytesIO()
        self._commit = commit

    async def _write(self, data: bytes) -> None:
        assert self._buffer is not None, "upload already finished"
        self._buffer.write(data)

    async def complete(self) -> None:
        assert self._buffer is not None, "upload already finished"
        self._commit(self._buffer.getvalue())
        self._buffer = None

    async def abort(self) -> None:
        self._buffer = None


class MemoryBackend(Backend):
    """fsspec's process-wide in-memory filesystem: for tests and dry runs; staging is a buffer."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    async def size(self, key: str) -> int | None:
        try:
            return int(self.fs.info(key)["size"])
        except FileNotFoundError:
            return None

    async def read(self, key: str, start: int, end: int) -> bytes:
        return bytes(self.fs.cat_file(key, start=start, end=end))

    def open_read(self, key: str) -> BinaryIO:
        stream: BinaryIO = self.fs.open(key, "rb")
        return stream

    async def put(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(key, data)

    async def start_upload(self, key: str) -> Upload:
        return _MemoryUpload(lambda data: self.fs.pipe_file(key, data))

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(key)

    async def list(self, prefix: str) -> list[tuple[str, int]]:
        try:
            found = self.fs.find(prefix, detail=True)
        except FileNotFoundError:
            return []
        return [(key, int(info["size"])) for key, info in found.items()]
