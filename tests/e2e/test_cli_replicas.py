"""Replicas the manifest calls verified are correct: reruns heal corrupt copies, consumers route around them.

Corruption is written straight into a site's object file, as bit rot or a bad disk would; everything else
is the CLI as a user runs it (``stratus run`` and ``stratus storage`` in subprocesses).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.run_world import cli_env, object_path, one_json, pipeline, stratus_cli, write_world
from tests.run_world import storage_json as storage

pytestmark = pytest.mark.slow  # each test runs the pipeline two or three times (a dozen worker processes)


def run(world: Path) -> tuple[int, dict[str, Any], str]:
    result = stratus_cli("run", world, "--json", cwd=world.parent)
    return result.returncode, one_json(result.stdout), result.stderr


def artifact(payload: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [a for a in payload["artifacts"] if a["name"] == name]
    return found


def flip_first_byte(path: Path) -> bytes:
    """Corrupt the object in place, keeping its size; returns the good bytes."""
    good = path.read_bytes()
    path.write_bytes(bytes([good[0] ^ 0x01]) + good[1:])
    return good


def test_a_rerun_replaces_a_corrupt_single_replica_instead_of_marking_it_verified(tmp_path: Path) -> None:
    world = write_world(tmp_path)
    code, first, err = run(world)
    assert code == 0, err
    total = artifact(first, "total.sum")
    assert total["replicas"] == ["cheap"]  # the only copy
    path = object_path(world, "cheap", total["sha256"])
    good = flip_first_byte(path)

    code, checked = storage(world, "verify")
    assert code == 1
    [row] = [a for a in checked["artifacts"] if "total.sum" in a["names"]]
    assert row["replicas"] == {"cheap": "corrupt"}

    code, second, err = run(world)
    assert code == 0, err
    assert [(s["step"], s["status"]) for s in second["steps"]] == [
        ("square", "cached"),
        ("total", "succeeded"),  # its output's only replica was corrupt: the step ran again
        ("evens", "cached"),
        ("combine", "cached"),
    ]
    assert path.read_bytes() == good  # the publish wrote over the corrupt copy
    code, checked = storage(world, "verify")
    assert code == 0, checked
    assert checked["unhealthy"] == 0


def test_a_corrupt_input_at_the_consumers_site_is_replaced_from_a_verified_replica(tmp_path: Path) -> None:
    def spec(variant: int) -> dict[str, Any]:
        # `total` may only run at `cheap`: failing over to another site is no way out of a bad replica.
        pinned = {"params": {"sleep": 0, "variant": variant}, "constraints": {"sites": ["cheap"]}}
        return pipeline(total=pinned)

    world = write_world(tmp_path, pipeline_spec=spec(1))
    code, first, err = run(world)
    assert code == 0, err
    squares = artifact(first, "square.squares")
    assert squares["replicas"] == ["cheap", "vault"]
    flip_first_byte(object_path(world, "cheap", squares["sha256"]))

    write_world(tmp_path, pipeline_spec=spec(2))  # a new param: `total` runs again and reads squares
    code, second, err = run(world)
    assert code == 0, err
    assert [(s["step"], s["status"], s["site"]) for s in second["steps"]][:2] == [
        ("square", "cached", "cheap"),
        ("total", "succeeded", "cheap"),
    ]
    sha = squares["sha256"]
    assert f"square.squares: the replica at cheap is corrupt (hash mismatch fetching {sha}" in err
    assert "marked corrupt, fetching a verified replica from another site" in err
    assert artifact(second, "square.squares")["replicas"] == ["cheap", "vault"]
    code, checked = storage(world, "verify")
    assert code == 0, checked


# A writer that stages part of an object in a store's tmp/ and then waits (for stdin, or a kill -9).
WRITER = """
import sys
from stratus.storage import open_store
from stratus.storage.store import run

store = open_store("cheap", sys.argv[1])


async def stage():
    upload = await store.backend.start_upload(store.key("0" * 64))
    await upload.part(1, b"half an object")
    return upload


upload = run(stage)
print("staged", flush=True)
sys.stdin.read()
"""


def start_writer(root: Path) -> subprocess.Popen[str]:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, f"file://{root}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    assert writer.stdout is not None
    assert writer.stdout.readline() == "staged\n"
    return writer


def test_staging_files_of_killed_writers_are_swept_and_a_live_writers_file_is_kept(tmp_path: Path) -> None:
    world = write_world(tmp_path)
    root = tmp_path / "sites" / "cheap"
    dead, live = start_writer(root), start_writer(root)
    try:
        dead.kill()  # SIGKILL: the writer gets no chance to clean up
        dead.wait(timeout=30)
        staged = {path.name for path in (root / "tmp").iterdir()}
        assert len(staged) == 2
        assert all(name.endswith(".part") for name in staged)
        an_hour_ago = time.time() - 3600  # both files look abandoned by age alone
        for path in (root / "tmp").iterdir():
            os.utime(path, (an_hour_ago, an_hour_ago))

        code, _, err = run(world)
        assert code == 0, err
        [kept] = list((root / "tmp").iterdir())  # the run swept the dead writer's file before writing
        live.kill()
        live.wait(timeout=30)
        os.utime(kept, (an_hour_ago, an_hour_ago))
        code, repaired = storage(world, "repair")
        assert code == 0, repaired
        assert repaired["swept"] == {"cheap": 1, "backup": 0, "vault": 0}
        assert list((root / "tmp").iterdir()) == []
    finally:
        for writer in (dead, live):
            writer.kill()
            writer.wait(timeout=30)


def start_run(world: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``stratus run`` in the background, its output to ``log``; returns it once it printed its run id."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stratus", "run", str(world)],
            cwd=world.parent,
            env=cli_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("run ") and ": " in line:
                return proc, line.split()[1].rstrip(":")
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no run id within 60 s:\n{log.read_text()}")


def slow_world(folder: Path) -> Path:
    spec = pipeline(sleep=0.3)
    spec["datasets"]["numbers"]["params"]["sleep"] = 3  # the first run is still going when the second starts
    return write_world(folder, pipeline_spec=spec)


def test_a_second_run_of_the_same_pipeline_waits_for_the_first_and_reuses_its_results(tmp_path: Path) -> None:
    world = slow_world(tmp_path)
    first, first_id = start_run(world, tmp_path / "first.log")
    try:
        code, second, err = run(world)
        assert first.wait(timeout=120) == 0, (tmp_path / "first.log").read_text()
    finally:
        first.kill()
        first.wait(timeout=30)
    assert code == 0, err
    assert [(s["step"], s["status"], s["cached_from"]) for s in second["steps"]] == [
        (step, "cached", first_id) for step in ("square", "total", "evens", "combine")
    ]
    assert second["cost_usd"] == 0  # nothing ran twice, so nothing was billed twice
    assert second["waited_for"] == first_id
    waited = f"pipeline flow on this platform is in progress (run {first_id}, process {first.pid} on "
    assert waited in " ".join(err.split())


def test_a_run_lock_left_by_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    world = slow_world(tmp_path)
    killed, killed_id = start_run(world, tmp_path / "killed.log")
    killed.kill()  # SIGKILL while it holds the lock: it never releases it
    killed.wait(timeout=30)
    code, payload, err = run(world)
    assert code == 0, err
    assert payload["waited_for"] is None
    took = f"took over the run lock of run {killed_id}, process {killed.pid} on "
    assert took in " ".join(err.split())
    assert "its process is gone or stopped renewing its lease" in " ".join(err.split())
