"""The DR drill's own checks (bench/dr_drill.py), fast: the independent re-hash and the recorded figure.

The drill itself runs on the sandbox's real servers in tests/e2e/test_demo_dr.py; here the parts that
decide its verdict are checked on an in-memory store, so that a re-hash that cannot fail, or one that
cannot read a platform file whose keys are references (as the sandbox writes them), is caught in
seconds.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import fsspec
import pytest

from bench.dr_drill import Command, Drill, Variant, hash_replicas, unreachable_figure


def test_hash_replicas_resolves_references_and_reports_missing_and_wrong_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"drill-{uuid.uuid4().hex}"
    # The store's URL is itself a reference, as a vault: or env: key is in the sandbox's platform file.
    monkeypatch.setenv("DRILL_STORE_URL", f"memory://{bucket}/stratus")
    platform = tmp_path / "platform.yaml"
    platform.write_text(
        "sites:\n"
        "  aws-eu-central:\n"
        "    provider: aws\n"
        "    region: eu-central-1\n"
        "    storage: env:DRILL_STORE_URL\n"
    )
    good, wrong, missing = (f"payload {i}".encode() for i in range(3))
    sha = {name: hashlib.sha256(data).hexdigest() for name, data in (("good", good), ("wrong", wrong))}
    sha["missing"] = hashlib.sha256(missing).hexdigest()
    fs = fsspec.filesystem("memory")
    key = "{}/stratus/objects/sha256/{}/{}".format
    fs.pipe(key(bucket, sha["good"][:2], sha["good"]), good)
    fs.pipe(key(bucket, sha["wrong"][:2], sha["wrong"]), b"not what was written")
    listing = {
        "artifacts": [
            {"sha256": sha[name], "replicas": {"aws-eu-central": "verified"}}
            for name in ("good", "wrong", "missing")
        ]
        + [{"sha256": "0" * 64, "replicas": {"aws-eu-central": "pending"}}]  # not held: not read
    }

    checked, problems = hash_replicas(platform, listing)

    bad_digest = hashlib.sha256(b"not what was written").hexdigest()
    assert checked == 2
    assert problems == [
        f"{sha['wrong']} at aws-eu-central: holds bytes hashing to {bad_digest}",
        f"{sha['missing']} at aws-eu-central: missing",
    ]


def _command(args: str, code: int, stdout: str, seconds: float) -> Command:
    return Command(tuple(args.split()), code, stdout, "", seconds)


def _variant(server: str, verify_down: Command, verify_before: Command | None, ls_s: float) -> Variant:
    ok = _command("storage repair", 0, "{}", 1.0)
    return Variant(
        server, "aws-eu-central", None, verify_before, ok, {"artifacts": []}, ls_s, verify_down, ok, ok, 0, []
    )


def test_the_recorded_figure_is_the_slowest_verify_with_a_store_down(tmp_path: Path) -> None:
    drill = Drill(tmp_path, say=lambda line: None)
    said = '{"unreachable_sites": {"aws-eu-central": "refused"}} unreachable'
    drill.variants = [
        _variant("s3", _command("storage verify", 4, said, 6.2), None, 3.1),
        _variant(
            "gcs", _command("storage verify", 4, said, 7.4), _command("storage verify", 4, said, 11.8), 3.4
        ),
    ]
    figure = unreachable_figure(drill)
    assert "**`storage verify` reports an unreachable site within 11.8 s**" in figure
    assert "the slowest of its 3 runs with a store down" in figure
    assert "every one said unreachable, exit 4" in figure
    assert "the promise is 10 s: **missed**" in figure
    assert (
        "Less the CLI's start-up (`storage ls`, no store read, timed in the same variant): at most 8.4 s"
        in figure
    )

    drill.variants = drill.variants[:1]
    assert "within 6.2 s** (the slowest of its 1 runs" in unreachable_figure(drill)
    assert "the promise is 10 s: met" in unreachable_figure(drill)
