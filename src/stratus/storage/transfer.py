"""Moving bytes between backends: streamed in parts, hashed in order, committed only when the hash agrees.

One engine serves publish (local file → store), fetch (store → local file), copy (store → store) and
rehash (store → nowhere). Small objects move in one read and one atomic PUT; large ones as a window of
parts in flight — ranged reads and part uploads overlap — while one hasher consumes the parts in order.
Memory stays bounded by ``part_size × window`` whatever the object's size, and nothing becomes visible at
the destination unless the SHA-256 of every byte that went through equals the content address.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from stratus.storage.backend import Backend, MiB, Upload

__all__ = ["IntegrityError", "Reader", "landed", "transfer"]

Reader = Callable[[int, int], Awaitable[bytes]]

#: Below this, hashing on the event loop is cheaper than a hop to a worker thread.
_INLINE_HASH = 1 * MiB


class IntegrityError(Exception):
    """The bytes read do not hash to the expected address, or fewer bytes arrived than announced."""

    def __init__(self, message: str, digest: str | None = None) -> None:
        super().__init__(message)
        self.digest = digest


async def _update(h: Any, data: bytes) -> None:
    # hashlib releases the GIL on large buffers, so a worker thread hashes while the loop keeps moving
    # bytes: on two cores this overlaps the SHA-256 pass with network I/O.
    if len(data) >= _INLINE_HASH:
        await asyncio.to_thread(h.update, data)
    else:
        h.update(data)


def _check(digest: str, expected: str | None) -> None:
    if expected is not None and digest != expected:
        raise IntegrityError(f"bytes hash to {digest}, not {expected}", digest)


async def landed(sink: Backend, key: str, size: int, expected: str) -> bool:
    """After an ambiguous commit (connection dropped while completing): did the whole object land?

    The commit may have happened before the connection died, so check size and then the hash of what is
    stored before reporting failure or retrying — never assume either way.
    """
    try:
        if await sink.size(key) != size:
            return False
        return await transfer(None, size, lambda s, e: sink.read(key, s, e), None, None) == expected
    except Exception:  # unreachable or unreadable means "not shown to have landed"
        return False


async def _commit(sink: Backend, key: str, size: int, expected: str | None, action: Awaitable[None]) -> None:
    try:
        await action
    except Exception:
        if expected is not None and await landed(sink, key, size, expected):
            return
        raise


async def _small(expected: str | None, size: int, read: Reader, sink: Backend | None, key: str | None) -> str:
    data = await read(0, size)
    if len(data) != size:
        raise IntegrityError(f"read {len(data)} bytes, expected {size}")
    h = hashlib.sha256()
    await _update(h, data)
    digest = h.hexdigest()
    _check(digest, expected)
    if sink is not None and key is not None:
        await _commit(sink, key, size, expected, sink.put(key, data))
    return digest


async def _parts(size: int, read: Reader, upload: Upload | None, part_size: int, window: int) -> str:
    """Reads (and uploads) parts with ``window`` in flight; returns the in-order SHA-256."""
    ranges = [(start, min(start + part_size, size)) for start in range(0, size, part_size)]
    loop = asyncio.get_running_loop()
    ready: list[asyncio.Future[bytes] | None] = [loop.create_future() for _ in ranges]
    h = hashlib.sha256()
    hashed = 0
    progress = asyncio.Condition()
    slots = asyncio.Semaphore(window)  # FIFO: parts enter in order, so the oldest always has a slot

    async def hasher() -> None:
        nonlocal hashed
        for i in range(len(ranges)):
            future = ready[i]
            assert future is not None
            data = await future
            ready[i] = None  # drop the reference: memory stays bounded by the window
            await _update(h, data)
            async with progress:
                hashed = i + 1
                progress.notify_all()

    async def move(i: int, start: int, end: int) -> None:
        async with slots:
            data = await read(start, end)
            if len(data) != end - start:
                raise IntegrityError(f"read {len(data)} bytes at offset {start}, expected {end - start}")
            future = ready[i]
            assert future is not None
            future.set_result(data)
            if upload is not None:
                await upload.part(i + 1, data)
            del data
            async with progress:
                await progress.wait_for(lambda: hashed > i)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(hasher())
            for i, (start, end) in enumerate(ranges):
                group.create_task(move(i, start, end))
    except BaseExceptionGroup as failed:
        # Callers translate single exceptions (which site, which key); the first cause is the story.
        raise _first(failed) from None
    return h.hexdigest()


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


async def transfer(
    expected: str | None,
    size: int,
    read: Reader,
    sink: Backend | None,
    key: str | None,
    *,
    part_size: int | None = None,
    window: int | None = None,
) -> str:
    """Stream ``size`` bytes from ``read`` into ``sink[key]`` (or nowhere); return their SHA-256.

    With ``expected`` set, the destination is committed only if the digest matches; otherwise the staged
    write is aborted and :class:`IntegrityError` raised. Large writes are checked for size after commit.
    """
    part = part_size or (sink.part_size if sink is not None else 16 * MiB)
    width = window or (sink.window if sink is not None else 4)
    if size <= part:
        return await _small(expected, size, read, sink, key)
    if sink is None or key is None:
        return await _parts(size, read, None, part, width)
    upload = await sink.start_upload(key)
    try:
        digest = await _parts(size, read, upload, part, width)
        _check(digest, expected)
    except BaseException:
        await upload.abort()
        raise
    try:
        await _commit(sink, key, size, expected, upload.complete())
    except BaseException:
        await upload.abort()
        raise
    stored = await sink.size(key)
    if stored != size:
        raise IntegrityError(f"after commit the object holds {stored} bytes, expected {size}")
    return digest
