"""Owner-only files and folders: created 0600/0700 whatever the umask, with no moment of a wider mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratus.private_files import private_dir, write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """umask 0: anything that relies on the umask, or chmods after writing, would be world-readable."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_a_private_folder_is_0700_new_or_existing(tmp_path: Path) -> None:
    new = private_dir(tmp_path / "state" / "serve")
    assert mode(new) == 0o700
    existing = tmp_path / "open"
    existing.mkdir(mode=0o755)
    assert mode(private_dir(existing)) == 0o700


def test_a_private_file_is_0600_and_replaces_a_readable_one(tmp_path: Path) -> None:
    target = tmp_path / "gateway.json"
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, b'{"admin_token": "t"}')
    assert mode(target) == 0o600
    assert target.read_bytes() == b'{"admin_token": "t"}'
    assert [p.name for p in tmp_path.iterdir()] == ["gateway.json"]  # no temporary file left


def test_the_content_is_never_visible_with_a_wider_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the rename that publishes it, the file already has mode 0600 and its whole content; before it,
    the target name does not exist."""
    target = tmp_path / "deployment.json"
    seen: list[tuple[int, bytes, bool]] = []
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        seen.append((mode(Path(src)), Path(src).read_bytes(), Path(dst).exists()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    write_private(target, b"secret")
    assert seen == [(0o600, b"secret", False)]


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("x")  # a non-empty folder cannot be replaced by a file
    with pytest.raises(IsADirectoryError, match="taken"):
        write_private(target, b"secret")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
