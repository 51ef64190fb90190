"""``stratus storage ls|verify|repair`` over a real run's manifest and stores, replicas broken on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.run_world import object_path, stratus_cli, write_world
from tests.run_world import storage_json as storage


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    world = write_world(tmp_path_factory.mktemp("storage"))
    result = stratus_cli("run", world, "--json", cwd=world.parent)
    assert result.returncode == 0, result.stderr
    return world


def by_name(payload: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [a for a in payload["artifacts"] if name in a["names"]]
    return found


def test_ls_lists_artifacts_with_their_names_and_replicas(world: Path) -> None:
    code, payload = storage(world, "ls")
    assert code == 0
    assert payload["action"] == "ls"
    assert len(payload["artifacts"]) == 5
    assert by_name(payload, "square.squares")["replicas"] == {"cheap": "verified", "vault": "verified"}
    code, payload = storage(world, "ls", "--site", "vault")
    assert [a["names"] for a in payload["artifacts"]] == [["square.squares"]]


def test_verify_finds_corrupt_and_missing_replicas_and_repair_restores_them(world: Path) -> None:
    _, listing = storage(world, "ls")
    squares = by_name(listing, "square.squares")
    report = by_name(listing, "combine.report")
    object_path(world, "vault", squares["sha256"]).write_bytes(b"bit rot")
    object_path(world, "cheap", report["sha256"]).unlink()

    code, verified = storage(world, "verify")
    assert code == 1
    assert by_name(verified, "square.squares")["replicas"] == {"cheap": "verified", "vault": "corrupt"}
    assert by_name(verified, "combine.report")["replicas"] == {"cheap": "missing"}
    assert verified["unhealthy"] == 2

    code, repaired = storage(world, "repair", "--site", "vault")
    assert code == 0
    assert by_name(repaired, "square.squares")["repaired"] == {"vault": squares["size_bytes"]}
    assert object_path(world, "vault", squares["sha256"]).read_bytes() != b"bit rot"

    code, repaired = storage(world, "repair")
    assert code == 1  # the only copy of combine.report is gone: nothing trustworthy to copy from
    error = by_name(repaired, "combine.report")["error"]
    assert error.startswith(
        f"site cheap (file://sites/cheap): cannot repair {report['sha256']}: no replica verifies"
    )

    human = stratus_cli("storage", "verify", "--site", "vault", cwd=world.parent)
    assert human.returncode == 0
    assert "1 of 1 artifacts verified on every replica." in human.stdout


def test_an_unknown_site_is_a_config_error(world: Path) -> None:
    result = stratus_cli("storage", "verify", "--site", "moon", cwd=world.parent)
    assert result.returncode == 2
    assert "unknown site 'moon'; the platform's sites are: cheap, backup, vault" in result.stderr
