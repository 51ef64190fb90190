"""Multi-site steps run by the real runner: ranks that meet over TCP, a rank that dies, a federated step.

The step functions here use plain sockets for their rendezvous, so these tests check the runner's part
(staging per site, the environment, starting and stopping the group, billing, the transfer ledger)
without a training framework; tests/integration/test_training_ddp.py covers torch.distributed itself.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from stratus.ledger import focus_records
from stratus.runner import RetryPolicy, run_file
from stratus.state import Repository, open_database, state_url
from tests.run_world import STEPS, pipeline, platform, write_world

pytestmark = pytest.mark.slow

MULTI_STEPS = STEPS + textwrap.dedent(
    """
    import os
    import socket
    import time

    def ranks(ctx):
        rank = int(os.environ["STRATUS_RANK"])
        host, port = os.environ["STRATUS_COORDINATOR"].split(":")
        mine = f"{rank}:{os.environ['STRATUS_SITE']}:{len(ctx.input('numbers').read_text().split())}"
        if ctx.params.get("fail_rank") == rank:
            raise RuntimeError(f"rank {rank} gives up")
        if rank == 0:
            server = socket.create_server((host, int(port)))
            server.settimeout(float(os.environ["STRATUS_DIST_TIMEOUT_S"]))
            seen = [mine]
            for _ in range(int(os.environ["STRATUS_WORLD_SIZE"]) - 1):
                conn, _ = server.accept()
                seen.append(conn.recv(100).decode())
                conn.close()
            ctx.output("model").write_text(";".join(sorted(seen)))
            return {"world": len(seen), "exchange_bytes": {s.split(":")[1]: {"sent": 1000, "received": 2000}
                                                           for s in seen[1:]}}
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection((host, int(port)), timeout=1) as conn:
                    conn.sendall(mine.encode())
                return {}
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def make_rows(ctx):
        [name] = ctx.outputs
        ctx.output(name).write_text("\\n".join(str(i) for i in range(ctx.params["n"])))

    def federated(ctx):
        seen = {site: sorted(refs) for site, refs in ctx.participants.items()}
        for site, refs in ctx.participants.items():
            for path in refs.values():
                assert f"/sites/{site}/" in str(path), path  # each participant's data in its own folder
        ctx.output("model").write_text(repr(sorted(seen.items())))
        return {"exchange_bytes": {site: {"sent": 5_000_000, "received": 5_000_000} for site in seen}}
    """
)


def world_with(tmp_path: Path, steps: dict[str, Any], **datasets: Any) -> Path:
    spec = pipeline()
    spec["steps"] = {"square": spec["steps"]["square"], **steps}
    spec["datasets"].update(datasets)
    sites = platform()
    sites["sites"]["us"] = {**sites["sites"]["backup"], "jurisdiction": "US", "storage": "file://sites/us"}
    sites["sites"]["us"]["region"] = "dc-us"
    world = write_world(tmp_path, pipeline_spec=spec, platform_spec=sites)
    (tmp_path / "flow_steps.py").write_text(MULTI_STEPS)
    return world


def repo_of(world: Path) -> Repository:
    return Repository(open_database(state_url(world.parent / "stratus.yaml")))


FAST = RetryPolicy(first_s=0.1, factor=2.0, max_s=0.5)


def test_ranks_start_together_at_their_sites_and_rank_0_publishes(tmp_path: Path) -> None:
    steps = {
        "train": {
            "run": "flow_steps:ranks",
            "inputs": ["dataset:numbers"],
            "outputs": {"model": {}},
            "kind": "distributed",
            "sites": ["cheap", "backup"],
            "exchange_gb": 0.001,
        }
    }
    world = world_with(tmp_path, steps)
    report = run_file(world, retry=FAST)
    assert report.succeeded, report.error
    coordinator = next(s for s in report.steps if s.step == "train").site
    other = ({"cheap", "backup"} - {coordinator}).pop()
    model = next((tmp_path / "sites" / coordinator / "objects").rglob("*"), None)
    assert model is not None
    repo = repo_of(world)
    [attempt] = [a for a in repo.attempts(report.run_id) if a.step == "train"]
    assert attempt.status == "succeeded"
    # Each rank read the dataset from its own site's store: the rank away from the data got a copy.
    copied_to = {row.to_site for row in repo.transfers(report.run_id) if row.artifact == "dataset:numbers"}
    assert "backup" in copied_to
    exchange = [r for r in repo.transfers(report.run_id) if r.reason == "model exchange"]
    assert {(r.from_site, r.to_site, r.bytes) for r in exchange} == {
        (other, coordinator, 1000),
        (coordinator, other, 2000),
    }
    compute = [r for r in focus_records(repo.db, run_id=report.run_id) if r["x_Step"] == "train"]
    assert {r["x_Site"] for r in compute if r["ServiceCategory"] == "Compute"} == {"cheap", "backup"}


def test_a_rank_that_fails_stops_the_others_and_the_step_names_it(tmp_path: Path) -> None:
    steps = {
        "train": {
            "run": "flow_steps:ranks",
            "inputs": ["dataset:numbers"],
            "outputs": {"model": {}},
            "kind": "distributed",
            "sites": 2,
            "params": {"fail_rank": 1, "timeout_s": 600},
            "max_attempts": 1,
        }
    }
    world = world_with(tmp_path, steps)
    report = run_file(world, retry=FAST)  # rank 0 would wait 600 s in accept() if it were not stopped
    assert not report.succeeded
    assert "rank 1 at" in (report.error or "")
    assert "rank 1 gives up" in (report.error or "")
    assert "then stopped: rank 0" in (report.error or "")


def test_federated_reads_each_sites_data_in_place_and_moves_only_model_updates(tmp_path: Path) -> None:
    datasets = {
        "eu_rows": {"site": "cheap", "size_gb": 0.01, "residency": "EU", "make": "flow_steps:make_rows",
                    "params": {"n": 20}},
        "us_rows": {"site": "us", "size_gb": 0.01, "residency": "US", "make": "flow_steps:make_rows",
                    "params": {"n": 30}},
    }  # fmt: skip
    steps = {
        "train": {
            "run": "flow_steps:federated",
            "inputs": ["dataset:eu_rows", "dataset:us_rows"],
            "outputs": {"model": {}},
            "kind": "federated",
            "exchange_gb": 0.01,
        },
    }
    world = world_with(tmp_path, steps, **datasets)
    report = run_file(world, retry=FAST)
    assert report.succeeded, report.error
    repo = repo_of(world)
    bound = {repo.resolve(report.run_id, "dataset:eu_rows"), repo.resolve(report.run_id, "dataset:us_rows")}
    transfers = repo.transfers(report.run_id)
    assert not [t for t in transfers if t.sha256 in bound], "a residency-bound dataset was copied"
    exchange = [t for t in transfers if t.reason == "model exchange"]
    assert exchange, "model updates must be recorded as transfers"
    assert {t.artifact for t in exchange} == {"train:exchange"}
    compute_sites = {
        r["x_Site"] for r in focus_records(repo.db, run_id=report.run_id) if r["x_Step"] == "train"
        and r["ServiceCategory"] == "Compute"
    }  # fmt: skip
    assert {"cheap", "us"} <= compute_sites
