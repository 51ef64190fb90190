"""A replica site that cannot be written: the run still succeeds with ``min: 1``, the replica is pending,
and it is completed (and billed) once the site can be written again, by ``storage repair`` or the next run.

The vault site's store is rooted beneath a regular file, so nothing can be created there; deleting that
file brings the site back. Stores killed outright are in tests/integration/test_storage_degraded.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stratus.ledger import focus_records
from stratus.state import Repository, open_database, state_url
from tests.run_world import one_json, pipeline, platform, stratus_cli, write_world

pytestmark = pytest.mark.slow

QUORUM = {"replicate": {"sites": ["backup", "vault"], "min": 1}}


def degraded_world(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "blocker").write_text("a regular file: the vault store cannot be created beneath it")
    sites = platform(vault_storage="file://blocker/vault")
    # A priced link from backup: repair must pick the cheaper holder (cheap, an on-prem source: free).
    sites["egress"] = [{"from": "backup", "to": "vault", "usd_per_gb": 0.05}]
    return write_world(folder, platform_spec=sites, pipeline_spec=pipeline(square=QUORUM))


def cli(world: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = stratus_cli(*args, "--json", cwd=world.parent)
    return result.returncode, one_json(result.stdout)


def squares(payload: dict[str, Any]) -> dict[str, Any]:
    [found] = [a for a in payload["artifacts"] if "square.squares" in a["names"]]
    return found


def repo_of(world: Path) -> Repository:
    return Repository(open_database(state_url(world.parent / "stratus.yaml")))


def repair_rows(world: Path, run_id: str) -> list[str]:
    """The descriptions of the run's FOCUS transfer rows that copied square.squares to vault."""
    rows = focus_records(repo_of(world).db, run_id=run_id)
    return [
        r["ChargeDescription"]
        for r in rows
        if r["x_Kind"] == "transfer" and r["ResourceName"] == "square.squares" and r["x_ToSite"] == "vault"
    ]


def test_a_run_with_min_one_succeeds_and_storage_repair_completes_the_pending_replica(tmp_path: Path) -> None:
    world = degraded_world(tmp_path / "w")
    code, run = cli(world, "run", str(world))
    assert code == 0, run
    assert [s["status"] for s in run["steps"]] == ["succeeded"] * 4
    [made] = [a for a in run["artifacts"] if a["name"] == "square.squares"]
    assert made["replicas"] == ["backup", "cheap"]  # never reported held where it is not

    code, listing = cli(world, "storage", "ls")
    assert code == 0
    assert listing["artifacts"][0]["names"] == ["square.squares"]  # under-replicated first
    assert squares(listing)["replicas"] == {"backup": "verified", "cheap": "verified", "vault": "pending"}
    assert listing["under_replicated"] == 1

    code, still = cli(world, "storage", "repair")
    assert code == 1  # the site answers but still cannot be written: the replica stays owed
    assert squares(still)["replicas"]["vault"] == "pending"
    assert squares(still)["error"].startswith("site vault (file://blocker/vault): ")

    (world.parent / "blocker").unlink()
    code, repaired = cli(world, "storage", "repair")
    assert code == 0, repaired
    size = squares(listing)["size_bytes"]
    assert squares(repaired)["repaired"] == {"vault": size}
    assert squares(repaired)["replicas"] == {"backup": "verified", "cheap": "verified", "vault": "verified"}
    # Billed like any transfer, to the run whose write it completes, from the cheapest verified holder.
    [row] = repair_rows(world, run["run_id"])
    assert row.startswith(f"copy square.squares from cheap to vault ({size} bytes = "), row
    [copy] = [t for t in repo_of(world).transfers() if t.reason == "repair"]
    assert (copy.from_site, copy.to_site, copy.bytes, copy.run_id) == ("cheap", "vault", size, run["run_id"])

    code, verified = cli(world, "storage", "verify")
    assert (code, verified["healthy"], verified["unhealthy"]) == (0, 5, 0)


def test_the_next_run_of_any_pipeline_completes_pending_replicas_first_unless_told_not_to(
    tmp_path: Path,
) -> None:
    world = degraded_world(tmp_path / "w")
    first = stratus_cli("run", world, cwd=world.parent)
    assert first.returncode == 0, first.stderr
    assert "square.squares: replica at vault pending (publishing " in first.stdout  # said as it happens
    (world.parent / "blocker").unlink()
    # Another pipeline on the same platform: it never writes square.squares itself.
    other = world.with_name("other.yaml")
    other.write_text(yaml.safe_dump({**pipeline(square={"replicate": []}), "name": "other"}, sort_keys=False))

    skipped = stratus_cli("run", other, "--no-repair", cwd=world.parent)
    assert skipped.returncode == 0, skipped.stderr
    assert "pending replica" not in skipped.stdout
    assert list(repo_of(world).pending().values()) == [["vault"]]

    again = stratus_cli("run", other, cwd=world.parent)
    assert again.returncode == 0, again.stderr
    assert "repaired 1 pending replica(s) at vault" in again.stdout
    assert repo_of(world).pending() == {}
    latest = repo_of(world).runs()[0].id
    size = squares(cli(world, "storage", "ls")[1])["size_bytes"]
    # Charged to the run that repaired it.
    [row] = repair_rows(world, latest)
    assert row.startswith(f"copy square.squares from cheap to vault ({size} bytes = "), row
