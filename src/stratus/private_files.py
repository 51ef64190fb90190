"""Files that hold a secret (an admin token, a storage key): owner-only from the first byte.

Writing a file and then ``chmod 0600`` leaves a window in which any local user may open it (and keep
the descriptor); ``os.open(..., O_CREAT, 0o600)`` on a name that already exists keeps the old mode. So a
private file is written to a fresh temporary file, created 0600 with ``O_EXCL`` in the same folder, and
renamed over the target: the target is never visible with other content or a wider mode, and readers
see the old file or the whole new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["private_dir", "write_private"]

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) owner-only, or narrow it to 0700 if it exists; returns it.

    Only ``path`` itself is narrowed: its parents are shared folders the user chose.
    """
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 from creation; the folder must exist."""
    # mkstemp creates the file with O_EXCL and mode 0600, whatever the umask.
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
