"""Directory artifacts (a Parquet dataset, a model folder) as one deterministic tar, so one hash names them.

Same tree in, same bytes out: entries sorted by path, mtimes zeroed, owners blanked, modes reduced to
"executable or not", no compression (compressors embed timestamps and vary across versions). Two runs
that produce the same files therefore publish the same object and a cache hit is a hash comparison.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from stratus.errors import StorageError

__all__ = ["pack_dir", "unpack"]


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isdir():
        info.mode = 0o755
    elif info.isfile():
        info.mode = 0o755 if info.mode & 0o111 else 0o644
    return info


def pack_dir(directory: Path, out: Path | None = None) -> Path:
    """Write ``directory`` as a deterministic tar (default: ``<directory>.tar`` beside it); return its path.

    Symbolic links are refused: what they point at is not part of the artifact, so its hash would lie.
    """
    if not directory.is_dir():
        raise StorageError(f"cannot pack {directory}: it is not a directory")
    target = out or directory.with_name(directory.name + ".tar")
    entries: list[Path] = []
    for folder, dirs, files in os.walk(directory):
        dirs.sort()
        base = Path(folder)
        for name in sorted([*dirs, *files]):
            path = base / name
            if path.is_symlink():
                raise StorageError(
                    f"cannot pack {directory}: {path} is a symbolic link; copy the file it points to instead"
                )
            entries.append(path)
    entries.sort(key=lambda p: p.relative_to(directory).as_posix())
    partial = target.with_name(f".{target.name}.partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in entries:
            info = _normalise(tar.gettarinfo(str(path), arcname=path.relative_to(directory).as_posix()))
            if info.isfile():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    os.replace(partial, target)
    return target


def unpack(file: Path, directory: Path) -> None:
    """Extract a packed artifact into ``directory`` (created); refuses paths that escape it or links."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(file, "r") as tar:
            tar.extractall(directory, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise StorageError(f"cannot unpack {file} into {directory}: {exc}") from exc
