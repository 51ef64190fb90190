"""Holds: what a drill writes so the supervisor leaves a process down, and how they end."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

from stratus.serving.holds import gateway_key, held, hold, holds_file, release, server_key


def test_a_hold_lasts_until_released_and_release_keeps_the_others(tmp_path: Path) -> None:
    hold(tmp_path, [server_key("a"), gateway_key("gateway-2")], 60)
    assert held(tmp_path, "server:a")
    assert held(tmp_path, "gateway:gateway-2")
    assert not held(tmp_path, "server:b")
    release(tmp_path, [server_key("a")])
    assert not held(tmp_path, "server:a")
    assert held(tmp_path, "gateway:gateway-2")
    release(tmp_path, [gateway_key("gateway-2")])
    assert not holds_file(tmp_path).exists()  # nothing held: no file left behind


def test_a_hold_ends_by_itself_at_its_deadline(tmp_path: Path) -> None:
    """A drill that died mid-way cannot keep a site down for ever."""
    hold(tmp_path, [server_key("a")], 0.2)
    assert held(tmp_path, "server:a")
    deadline = time.monotonic() + 5
    while held(tmp_path, "server:a"):
        assert time.monotonic() < deadline, "the hold outlived its deadline"
        time.sleep(0.05)
    hold(tmp_path, [server_key("b")], 60)  # an expired hold is dropped when the next is written
    assert set(json.loads(holds_file(tmp_path).read_text())) == {"server:b"}


def test_an_unreadable_holds_file_holds_nothing(tmp_path: Path) -> None:
    holds_file(tmp_path).write_text("{not json")
    assert not held(tmp_path, "server:a")
    holds_file(tmp_path).write_text('["server:a"]')
    assert not held(tmp_path, "server:a")


def test_the_holds_file_is_owner_only(tmp_path: Path) -> None:
    hold(tmp_path / "serve", [server_key("a")], 60)
    assert stat.S_IMODE(holds_file(tmp_path / "serve").stat().st_mode) == 0o600
