"""``stratus storage get|cat``: an artifact out of the platform by name or hash, hash-checked, from any
verified holder, as a user runs it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.run_world import object_path, one_json, stratus_cli, write_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    world = write_world(tmp_path_factory.mktemp("get"))
    result = stratus_cli("run", world, "--json", cwd=world.parent)
    assert result.returncode == 0, result.stderr
    return world, one_json(result.stdout)


def _sha(report: dict[str, Any], name: str) -> str:
    return next(str(a["sha256"]) for a in report["artifacts"] if a["name"] == name)


def test_get_writes_the_file_and_says_which_site(done: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    world, report = done
    out = tmp_path / "report.txt"
    result = stratus_cli("storage", "get", "combine.report", "-o", out, cwd=world.parent)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "sum=40425 evens=25"
    sha = _sha(report, "combine.report")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
    assert f"wrote {out} (18 bytes, sha256 {sha}) from site cheap" in result.stderr.replace("\n", "")


def test_cat_prints_the_bytes_by_hash_prefix(done: tuple[Path, dict[str, Any]]) -> None:
    world, report = done
    result = stratus_cli("storage", "cat", _sha(report, "square.squares")[:10], cwd=world.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(n * n) for n in range(50)]
    assert "bytes from site cheap" in result.stderr


def test_a_folder_is_unpacked_by_get_and_refused_by_cat(
    done: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    world, _ = done
    result = stratus_cli("storage", "get", "evens.evens", "-o", tmp_path / "evens", cwd=world.parent)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "evens" / "meta" / "count.json").read_text() == '{"count": 25}'
    result = stratus_cli("storage", "cat", "evens.evens", cwd=world.parent)
    assert result.returncode == 2
    assert "is a folder; copy it out with: stratus storage get evens.evens -o DIR" in result.stderr


def test_unknown_names_and_sites_are_explained(done: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    world, report = done
    result = stratus_cli("storage", "cat", "train.model", cwd=world.parent)
    assert result.returncode == 2
    assert "ARTIFACT: no artifact named 'train.model' in any run, and it is not a known SHA-256" in (
        result.stderr.replace("\n", " ")
    )
    assert "combine.report" in result.stderr  # the names it could have meant
    result = stratus_cli(
        "storage", "get", "square.squares", "--site", "backup", "-o", tmp_path / "x", cwd=world.parent
    )
    assert result.returncode == 1
    assert "could not fetch square.squares in run " in result.stderr
    assert f"backup: object {_sha(report, 'square.squares')} is not in this store" in result.stderr.replace(
        "\n", ""
    )
    assert not (tmp_path / "x").exists()


def test_a_corrupt_copy_is_skipped_for_a_verified_one(
    done: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    world, report = done
    sha = _sha(report, "square.squares")
    object_path(world, "cheap", sha).write_bytes(b"bit rot")
    out = tmp_path / "squares"
    result = stratus_cli("storage", "get", "square.squares", "-o", out, cwd=world.parent)
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
    said = result.stderr.replace("\n", "")
    assert "from site vault; skipped cheap: " in said
    assert "hash mismatch" in said or "size" in said
