"""The DR drill (`make demo-dr`) as a user runs it: a cloud's object store dies under the fraud pipeline.

On the sandbox's real servers (SeaweedFS, fake-gcs-server, Azurite), `examples/fraud-detection/dr.yaml`
dual-writes every artifact to aws-eu-central (S3) and gcp-eu-west (GCS) with `min: 1`. The S3 server is
killed by its recorded PID before ingest writes; the run must still finish with every step succeeded, the
S3 replicas pending and said so; `storage verify` meanwhile says "unreachable" (exit 4); once the server
is back on its port `storage repair` completes every pending replica, `storage verify` is clean, and a
plain fsspec client re-hashes every replica against its address. The same pipeline file, unedited, then
runs with GCS down instead. The drill is :mod:`bench.dr_drill`, the code `make demo-dr` runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.dr_drill import Drill, Variant
from tests.run_world import stratus_cli

DUAL = {"aws-eu-central", "gcp-eu-west"}
#: A variant is about a minute on a quiet 2-core machine (seven CLI commands, six steps, three fail-overs);
#: on one shared by several test runs each command's start-up alone can take 20 s, hence the room.
DRILL_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drill]:
    started = Drill(tmp_path_factory.mktemp("dr") / "sandbox", say=lambda line: None)
    started.up()
    try:
        yield started
    finally:
        started.down()  # every server stopped by the PID the sandbox recorded


def artifacts(payload: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Artifact name → its replicas and their states, from `storage ... --json`."""
    return {", ".join(a["names"]): a["replicas"] for a in payload["artifacts"]}


def check_variant(variant: Variant, earlier: list[Variant]) -> None:
    """Every promise of one drill variant, asserted on what the CLI said (``earlier``: the variants run
    before it on the same sandbox)."""
    site, other = variant.site, (DUAL - {variant.site}).pop()
    assert variant.run.code == 0, variant.run.stderr[-3000:]
    run = variant.run.json()
    assert [s["status"] for s in run["steps"]] == ["succeeded"] * 6
    assert site not in {s["site"] for s in run["steps"]}  # nothing ran on the dead cloud's site
    # Said as it happened, and never reported held where it is not.
    assert f"ingest.transactions: replica at {site} pending" in variant.run.stderr
    acknowledged = {a["name"]: a for a in run["artifacts"]}
    assert all(site not in a["replicas"] and other in a["replicas"] for a in acknowledged.values())

    produced = {name: replicas for name, replicas in artifacts(variant.listing).items() if "." in name}
    assert set(produced) == {
        "ingest.transactions",
        "preprocess.features",
        "train.model",
        "evaluate.metrics",
        "export.onnx",
        "report.summary",
    }
    assert all(r[site] == "pending" and r[other] == "verified" for r in produced.values()), produced

    down = variant.verify_down.json()
    assert variant.verify_down.code == 4, variant.verify_down.stdout
    assert site in down["unreachable_sites"]
    states = {state for r in artifacts(down).values() for state in r.values()}
    assert "unreachable" in states
    assert "missing" not in states

    # Repair completes every pending replica: by a copy, unless the very bytes are already there. Storage
    # is content-addressed and the pipeline deterministic, so in the second variant the dead cloud's
    # store already holds what the first variant wrote to it (verified then): those replicas are found
    # intact, not copied. Every other pending replica must have been copied; on the first variant's
    # fresh store that is all of them.
    already = {
        a["sha256"]
        for v in earlier
        for a in v.verify_after.json()["artifacts"]
        if a["replicas"].get(site) == "verified"
    }
    repaired = variant.repair.json()
    assert variant.repair.code == 0, variant.repair.stdout
    completed = {", ".join(a["names"]): a for a in repaired["artifacts"]}
    for name in produced:
        a = completed[name]
        assert a["replicas"][site] == "verified", (name, a)
        assert site in a["repaired"] or a["sha256"] in already, (name, a)
    after = variant.verify_after.json()
    assert variant.verify_after.code == 0, variant.verify_after.stdout
    assert (after["unhealthy"], after["under_replicated"]) == (0, 0)
    final = artifacts(after)
    # No acknowledged replica lost: each one the run reported held is still verified. That includes the
    # card feed (dataset:raw_transactions), which dr.yaml does not dual-write: it lives on azure-eu-west
    # and is reported with the copy staged to the surviving cloud, never with one on the dead cloud.
    for name, a in acknowledged.items():
        held = {replica: final[name][replica] for replica in a["replicas"]}
        assert held == dict.fromkeys(a["replicas"], "verified"), (name, final[name])
    # And every step output, once repaired, is held on both clouds.
    for name in produced:
        assert final[name][site] == final[name][other] == "verified", (name, final[name])

    # Independent of our store code: every verified replica re-read by s3fs/gcsfs/adlfs and re-hashed.
    replicas = sum(1 for r in final.values() for state in r.values() if state == "verified")
    assert variant.hash_problems == []
    assert variant.hashed == replicas


@pytest.mark.slow
@pytest.mark.timeout(DRILL_TIMEOUT_S)
def test_the_fraud_pipeline_finishes_with_s3_down_and_repair_loses_nothing(drill: Drill) -> None:
    # As `make demo-dr` runs it: the sandbox's keys are in OpenBao and the platform file holds references
    # only, which every command (and the independent re-hash) must resolve.
    platform = drill.platform.read_text()
    assert "key: vault:secret/stratus/sandbox/s3#key" in platform
    assert "connection_string: vault:secret/stratus/sandbox/azure#connection_string" in platform
    variant = drill.variant("s3")
    check_variant(variant, drill.variants[:-1])


@pytest.mark.slow
@pytest.mark.timeout(DRILL_TIMEOUT_S)
def test_the_same_pipeline_file_runs_with_gcs_down_instead(drill: Drill) -> None:
    if not drill.variants:
        drill.variant("s3")  # run alone: the S3 drill first, so GCS holds verified replicas to lose
    variant = drill.variant("gcs")
    check_variant(variant, drill.variants[:-1])
    # The first run's artifacts, every replica verified, with GCS just killed: unreachable, not missing.
    assert variant.verify_before is not None
    before = variant.verify_before.json()
    assert variant.verify_before.code == 4, variant.verify_before.stdout
    assert list(before["unreachable_sites"]) == ["gcp-eu-west"]
    assert {r["gcp-eu-west"] for r in artifacts(before).values() if "gcp-eu-west" in r} == {"unreachable"}


def test_sandbox_stop_names_what_is_missing(tmp_path: Path) -> None:
    platform = tmp_path / "sandbox.yaml"
    result = stratus_cli("sandbox", "stop", "s3", "--platform-out", platform, cwd=tmp_path)
    assert result.returncode == 2
    assert f"no sandbox is recorded beside {platform}" in result.stderr
    assert "start one with `stratus sandbox up" in result.stderr
    assert "Traceback" not in result.stderr
