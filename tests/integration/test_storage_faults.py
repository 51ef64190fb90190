"""Crash a real S3 server (SeaweedFS, SIGKILL) while a dual-write to it is in flight.

Whatever the moment of the crash, two promises must hold: a dual-write that returned has whole, verified
bytes on every replica, and ``verify`` never calls a replica verified unless its bytes hash to the address.
Once the server is back, ``repair`` restores the replica and the staging debris can be swept.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stratus.errors import StorageError
from stratus.storage import ObjectInfo, SiteStore, dual_write, open_store, repair, verify

pytest_plugins = ["tests.servers"]
pytestmark = pytest.mark.slow

SIZE = 64 * 2**20


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("payload") / "model.bin"
    path.write_bytes(os.urandom(SIZE))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _impatient(options: dict[str, Any]) -> dict[str, Any]:
    """Fewer retries than the SDK default (about 30 s of backoff against a dead endpoint): same code paths."""
    config = {**options.get("config_kwargs", {}), "retries": {"max_attempts": 2, "mode": "standard"}}
    return {**options, "config_kwargs": {**config, "connect_timeout": 2}}


def _in_thread(work: Callable[[], ObjectInfo]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["info"] = work()
        except BaseException as exc:  # reported to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _independent_hash(store: SiteStore, sha: str) -> str:
    with store.open_read(sha) as stream:
        return hashlib.sha256(stream.read()).hexdigest()


@pytest.mark.parametrize(
    ("delay_s", "s3_first"),
    [(0.3, False), (0.9, False), (1.6, False), (0.3, True)],
    ids=["early", "middle", "late", "as-primary"],
)
def test_kill_s3_during_dual_write(
    delay_s: float, s3_first: bool, server_factory: Any, payload: tuple[Path, str], tmp_path: Path
) -> None:
    local, sha = payload
    weed = server_factory("s3")
    s3 = open_store("aws-site", weed.url("replica"), _impatient(weed.options()))
    disk = open_store("disk-site", "file://disk", base_dir=tmp_path)
    stores = [s3, disk] if s3_first else [disk, s3]
    thread, outcome = _in_thread(lambda: dual_write(local, stores))
    time.sleep(delay_s)
    weed.kill()
    thread.join(timeout=180)
    assert not thread.is_alive(), "dual_write hung after the server died"

    if "error" in outcome:
        error = outcome["error"]
        assert isinstance(error, StorageError), f"expected StorageError, got {error!r}"
        assert error.site == "aws-site", str(error)
        assert f"site aws-site ({s3.url})" in str(error), str(error)
    else:  # it finished before the kill landed: then every replica must really hold the bytes
        assert outcome["info"] == ObjectInfo(sha, SIZE)

    weed.restart()
    status = verify(sha, stores)
    if "info" in outcome:
        assert status == {"aws-site": "verified", "disk-site": "verified"}, status
    for store in stores:
        if status[store.site] == "verified":
            assert _independent_hash(store, sha) == sha, f"{store.site} was called verified but is not whole"
        else:
            assert status[store.site] == "missing", f"{store.site}: {status[store.site]} after a crash"

    if status["disk-site"] != "verified":  # s3 was primary and died before anything was copied
        assert disk.publish(local).sha256 == sha
    moved = repair(sha, stores)
    assert moved["aws-site"] in (0, SIZE), moved
    assert moved["disk-site"] in (0, SIZE), moved
    assert verify(sha, stores) == {"aws-site": "verified", "disk-site": "verified"}
    assert _independent_hash(s3, sha) == sha
    s3.sweep(max_age_s=0)  # orphaned multipart parts from the killed upload are abortable now
