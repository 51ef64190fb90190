"""Model bytes staged for serving are the bytes their hash names, whatever a cache or a replica holds.

Real local stores and a real state database; corruption is written straight into the files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from stratus.serving.source import ModelSource, stage_model
from stratus.state import Repository, default_url, open_database
from stratus.storage import open_store


def test_a_corrupt_cached_model_or_serving_replica_is_replaced_by_verified_bytes(tmp_path: Path) -> None:
    repo = Repository(open_database(default_url(tmp_path / ".stratus")))
    stores = {name: open_store(name, f"file://{tmp_path / name}") for name in ("a", "b")}
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not really onnx, but bytes with a hash" * 100)
    good = model.read_bytes()
    sha = hashlib.sha256(good).hexdigest()
    for name, store in stores.items():
        store.publish(model)
        repo.set_replica(sha, name, "verified")
    source = ModelSource("m", "test model", sha256=sha)
    cache = tmp_path / "cache"
    rotten = bytes([good[0] ^ 0x01]) + good[1:]

    paths = stage_model(source, stores, repo, cache)
    paths["a"].write_bytes(rotten)  # the serving cache rotted
    paths = stage_model(source, stores, repo, cache)
    assert paths["a"].read_bytes() == good

    paths["a"].unlink()
    Path(stores["a"].key(sha)).write_bytes(rotten)  # the site's replica rotted, b's is fine
    paths = stage_model(source, stores, repo, cache)
    assert paths["a"].read_bytes() == good
    assert stores["a"].rehash(sha) == sha
    assert repo.replicas(sha) == {"a": "verified", "b": "verified"}
