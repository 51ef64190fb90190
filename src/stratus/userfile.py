"""Read a file a user named, refusing what is not a regular file and stopping at a size cap.

``--platform /dev/zero`` would otherwise be read forever, a FIFO would block the command until someone
writes to it, and a multi-GB file would be loaded whole. The file is opened non-blocking (so a FIFO
cannot hang the open) and checked with ``fstat`` on that same descriptor (so it cannot be swapped
between the check and the read).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from stratus.errors import ConfigError

__all__ = ["read_user_file"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device (like /dev/zero)"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_user_file(path: Path, *, limit: int, error: type[ConfigError] = ConfigError) -> bytes:
    """The bytes of ``path``; ``error`` (naming the file) when it is missing, not a regular file, or
    larger than ``limit`` bytes."""
    shown = str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error("file not found; check the path", file=shown) from None
    except OSError as exc:
        raise error(f"cannot read the file: {exc.strerror or exc}", file=shown) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise error(f"this is {kind}, not a regular file; pass the path of a file", file=shown)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise error(f"cannot read the file: {exc.strerror or exc}", file=shown) from None
    finally:
        os.close(fd)
    if size > limit:
        raise error(
            f"the file is larger than {limit:,} bytes, the most Stratus reads from such a file", file=shown
        )
    return b"".join(chunks)
