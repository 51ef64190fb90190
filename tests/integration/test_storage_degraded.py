"""One replica site's object store down, on real servers (SeaweedFS for S3, fake-gcs-server for GCS).

A run dual-writing with ``min: 1`` succeeds while the S3 server is dead, leaving that replica pending;
``storage verify`` says the site is unreachable (exit 4) and records nothing about it; once the server is
back, ``storage repair`` completes the replica and bills the copy; every replica then hashes right when
read by a plain fsspec client. The fault trials kill a store at random moments of a ``min: 1`` write
(``STRATUS_DR_TRIALS``, default 10; ``python -m bench.dr_storage`` runs 50).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import fsspec
import pytest
import yaml
from sqlalchemy import select

from bench.dr_storage import impatient, run_trials, summary
from stratus.ledger import focus_records
from stratus.state import ReplicaRow, Repository, open_database, state_url
from tests.run_world import one_json, stratus_cli

pytest_plugins = ["tests.servers"]
pytestmark = pytest.mark.slow

STEP = """
import hashlib

def ingest(ctx):
    block = hashlib.sha256(b"transactions").digest()
    ctx.output("transactions").write_bytes(block * 40_000)  # 1.28 MB, the same bytes every run
"""


def _site(server: Any, prefix: str, price: float, jurisdiction: str) -> dict[str, Any]:
    options = impatient(server.options()) if server.kind == "s3" else server.options()
    return {
        "provider": "onprem",
        "region": f"dc-{prefix}",
        "jurisdiction": jurisdiction,
        "storage": server.url(prefix),
        "storage_options": options,
        "compute": {"backend": "local", "capacity": {"max_parallel_steps": 1}},
        "offerings": [{"name": f"node-{prefix}", "vcpus": 2, "memory_gb": 4, "price_per_hour_usd": price}],
    }


@pytest.fixture
def world(tmp_path: Path, server_factory: Any) -> tuple[Path, Any, Any]:
    """An S3 site (cheapest: the step runs there) and a GCS site, with their own private servers."""
    s3, gcs = server_factory("s3"), server_factory("gcs")
    platform = {
        "sites": {"aws-us-east": _site(s3, "aws", 0.10, "US"), "gcp-eu-west": _site(gcs, "gcp", 0.90, "EU")}
    }
    pipeline = {
        "name": "ingest",
        "steps": {
            "ingest": {
                "run": "ingest_steps:ingest",
                "outputs": {"transactions": {"size_gb": 0.001}},
                "estimated_hours": 0.1,
                "replicate": {"sites": ["aws-us-east", "gcp-eu-west"], "min": 1},
            }
        },
    }
    (tmp_path / "stratus.yaml").write_text(yaml.safe_dump(platform, sort_keys=False))
    (tmp_path / "ingest_steps.py").write_text(STEP)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return path, s3, gcs


def cli(world: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = stratus_cli(*args, "--json", cwd=world.parent)
    assert result.stdout.strip(), result.stderr
    return result.returncode, one_json(result.stdout)


def repo_of(world: Path) -> Repository:
    return Repository(open_database(state_url(world.parent / "stratus.yaml")))


def replicas(world: Path) -> dict[str, tuple[str, Any]]:
    """Site → (status, checked_at) of the one artifact, straight from the manifest."""
    db = repo_of(world).db
    with db.session() as session:
        return {row.site: (row.status, row.checked_at) for row in session.scalars(select(ReplicaRow))}


def independent_hash(server: Any, prefix: str, sha: str) -> str:
    """What the server holds at the object's address, read with a plain fsspec client."""
    protocol = {"s3": "s3", "gcs": "gcs"}[server.kind]
    fs = fsspec.filesystem(protocol, skip_instance_cache=True, **server.options())
    data = fs.cat_file(f"{server.bucket}/{prefix}/objects/sha256/{sha[:2]}/{sha}")
    return hashlib.sha256(data).hexdigest()


def test_a_dead_s3_store_leaves_a_pending_replica_that_repair_completes_once_it_is_back(
    world: tuple[Path, Any, Any],
) -> None:
    pipeline, s3, gcs = world
    s3.kill()  # before the run: the cheapest site's store, where the step was planned, is down

    code, run = cli(pipeline, "run", str(pipeline))
    assert code == 0, run
    [step] = run["steps"]
    # The plan-time probe finds aws-us-east down: the step runs at gcp-eu-west, and the replica the
    # pipeline asks for at aws-us-east is left pending (min: 1 is met), not a failure.
    assert (step["site"], step["status"], step["attempts"]) == ("gcp-eu-west", "succeeded", 1)
    assert [down["site"] for down in run["sites_down"]] == ["aws-us-east"]
    [made] = run["artifacts"]
    assert made["replicas"] == ["gcp-eu-west"]
    sha, size = made["sha256"], made["size_bytes"]

    code, listing = cli(pipeline, "storage", "ls")
    assert code == 0
    assert listing["artifacts"][0]["replicas"] == {"aws-us-east": "pending", "gcp-eu-west": "verified"}

    before = replicas(pipeline)
    code, verified = cli(pipeline, "storage", "verify", "--timeout", "2")
    assert code == 4, verified
    assert verified["artifacts"][0]["replicas"] == {"aws-us-east": "unreachable", "gcp-eu-west": "verified"}
    assert list(verified["unreachable_sites"]) == ["aws-us-east"]
    after = replicas(pipeline)
    assert after["aws-us-east"] == before["aws-us-east"]  # not "missing", not even re-stamped
    human = stratus_cli("storage", "verify", "--timeout", "2", cwd=pipeline.parent)
    assert human.returncode == 4
    assert "site aws-us-east is unreachable: " in human.stdout

    s3.restart()
    code, repaired = cli(pipeline, "storage", "repair")
    assert code == 0, repaired
    assert repaired["artifacts"][0]["repaired"] == {"aws-us-east": size}
    rows = focus_records(repo_of(pipeline).db, run_id=run["run_id"])
    copies = [r["ChargeDescription"] for r in rows if r["x_Kind"] == "transfer"]
    # The write itself moved nothing between sites (aws-us-east was down): the repair is the one copy.
    [copy] = copies
    assert copy.startswith(f"copy ingest.transactions from gcp-eu-west to aws-us-east ({size} bytes = "), copy

    code, clean = cli(pipeline, "storage", "verify")
    assert (code, clean["healthy"], clean["unreachable_sites"]) == (0, 1, {})
    assert independent_hash(s3, "aws", sha) == sha
    assert independent_hash(gcs, "gcp", sha) == sha

    # Down again: a verified replica stays verified in the manifest (old code wrote "missing").
    s3.kill()
    code, _ = cli(pipeline, "storage", "verify", "--timeout", "2")
    assert code == 4
    assert replicas(pipeline)["aws-us-east"][0] == "verified"


def test_killing_one_of_two_stores_during_min_one_writes_loses_nothing_acknowledged(tmp_path: Path) -> None:
    trials = int(os.environ.get("STRATUS_DR_TRIALS", "10"))
    results = run_trials(trials, tmp_path, seed=10, log=lambda _line: None)
    counts = summary(results)
    assert counts["trials"] == trials
    assert (counts["lost"], counts["false_held"]) == (0, 0), [r for r in results if r.lost or r.false_held]
    assert counts["failed"] == 0, [r.error for r in results if r.error]  # the survivor meets min: 1
    assert counts["repaired"] == counts["pending"], results  # each pending replica completed afterwards
