"""copy_many learns presence from one listing per store; a listed object still counts only once re-read.

From ``_BULK_LISTING`` objects on one store the sizes come from a listing instead of a lookup each, and
the lookup before the re-read is skipped: a corrupt object of the right size must still be copied over.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from stratus.storage import copy_many, open_store
from stratus.storage.copy import _BULK_LISTING


def test_a_listed_corrupt_object_of_the_right_size_is_copied_over(tmp_path: Path) -> None:
    src = open_store("src", f"file://{tmp_path / 'src'}")
    dst = open_store("dst", f"file://{tmp_path / 'dst'}")
    shas = []
    for i in range(_BULK_LISTING):
        path = tmp_path / "blob.bin"
        path.write_bytes(os.urandom(64) + i.to_bytes(4, "big"))
        shas.append(src.publish(path).sha256)
    items = [(sha, src, dst) for sha in shas]
    assert copy_many(items) == [68] * len(shas)

    rotten = shas[7]
    Path(dst.key(rotten)).write_bytes(os.urandom(68))  # same size, other bytes: a listing cannot tell
    moved = copy_many(items)
    assert moved[7] == 68, "a corrupt object listed at the destination was taken for a copy"
    assert sum(moved) == 68, moved
    assert hashlib.sha256(Path(dst.key(rotten)).read_bytes()).hexdigest() == rotten
