"""``stratus ui``'s mistakes as a user makes them: each a clear message and exit 2, never a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.run_world import stratus_cli, write_world


def test_a_taken_port_is_named_with_the_flag_to_change(tmp_path: Path) -> None:
    world = write_world(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = stratus_cli("ui", "--port", port, cwd=world.parent)
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_platform_file_is_a_usage_error(tmp_path: Path) -> None:
    result = stratus_cli("ui", "--platform", tmp_path / "nope.yaml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "nope.yaml" in result.stderr
    assert "Traceback" not in result.stderr
