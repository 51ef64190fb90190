"""One contract for every storage backend: memory, files, S3 (SeaweedFS), Azure (Azurite), GCS (fake-gcs).

Servers are real processes on loopback (tests/servers.py). Corruption is written straight to the backend
key with the vendor's own client, never through our code, so verify/repair see what a bit flip would be.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest

from stratus.errors import StorageError
from stratus.storage import (
    SiteStore,
    copy_many,
    copy_object,
    dual_write,
    open_store,
    pack_dir,
    repair,
    unpack,
    verify,
)
from stratus.storage.store import run
from stratus.storage.transfer import transfer

pytest_plugins = ["tests.servers"]
pytestmark = pytest.mark.slow

KINDS = ["memory", "file", "s3", "azure", "gcs"]
_FIXTURE = {"s3": "seaweedfs", "azure": "azurite", "gcs": "fake_gcs"}
_PROTOCOL = {"s3": "s3", "azure": "abfs", "gcs": "gcs"}
MakeStore = Callable[..., SiteStore]


class Stores:
    """Opens fresh, isolated stores (a new prefix each) of any kind for one test."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.request = request
        self.tmp_path = tmp_path

    def server(self, kind: str) -> Any:
        """The session's TestServer of that kind (tests/servers.py)."""
        return self.request.getfixturevalue(_FIXTURE[kind])

    def open(self, kind: str, site: str | None = None, jurisdiction: str | None = None) -> SiteStore:
        prefix = f"t-{uuid.uuid4().hex[:12]}"
        name = site or f"{kind}-{prefix[-4:]}"
        if kind == "memory":
            return open_store(name, f"memory://{prefix}", jurisdiction=jurisdiction)
        if kind == "file":  # relative on purpose: resolved against base_dir, as platform files are
            return open_store(
                name, f"file://sites/{prefix}", base_dir=self.tmp_path, jurisdiction=jurisdiction
            )
        server = self.server(kind)
        return open_store(name, server.url(prefix), server.options(), jurisdiction=jurisdiction)

    def raw_write(self, kind: str, store: SiteStore, sha: str, data: bytes) -> None:
        """Overwrite an object's bytes with the vendor client (what a bit flip or a rogue writer does)."""
        key = store.key(sha)
        if kind == "file":
            Path(key).write_bytes(data)
        elif kind == "memory":
            fsspec.filesystem("memory").pipe_file(key, data)
        else:
            options = self.server(kind).options()
            fs = fsspec.filesystem(_PROTOCOL[kind], skip_instance_cache=True, **options)
            fs.pipe_file(key, data)


@pytest.fixture
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    return Stores(request, tmp_path)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _blob(tmp_path: Path, size: int, name: str | None = None) -> tuple[Path, str]:
    path = tmp_path / (name or f"blob-{uuid.uuid4().hex[:8]}")
    path.write_bytes(os.urandom(size))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_publish_lookup_fetch_rehash_remove(kind: str, stores: Stores, tmp_path: Path) -> None:
    store = stores.open(kind)
    local, sha = _blob(tmp_path, 300_000)
    assert store.info(sha) is None, f"fresh store {store.url} already holds {sha}"
    assert not store.has(sha)
    info = store.publish(local)
    assert (info.sha256, info.size_bytes) == (sha, 300_000)
    assert store.has(sha), store.url
    assert store.has(sha, 300_000), store.url
    assert not store.has(sha, 299_999), f"{store.url}: a wrong size must not count as present"
    assert store.info(sha) == info
    assert store.publish(local) == info, "publishing the same bytes twice must be a no-op"
    assert list(store.objects()) == [info], f"{store.url} lists {list(store.objects())}"
    out = tmp_path / "out" / "fetched.bin"
    store.fetch(sha, out)
    assert out.read_bytes() == local.read_bytes()
    assert store.rehash(sha) == sha
    with store.open_read(sha) as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == sha
    store.remove(sha)
    store.remove(sha)  # idempotent
    assert not store.has(sha)
    assert list(store.objects()) == []
    with pytest.raises(StorageError, match=f"site {store.site} .*{store.url}.*not in this store"):
        store.fetch(sha, out)


def test_empty_and_multipart_objects(kind: str, stores: Stores, tmp_path: Path) -> None:
    store = stores.open(kind)
    empty, empty_sha = _blob(tmp_path, 0)
    big, big_sha = _blob(tmp_path, 20 * 2**20 + 12345)  # several parts on every backend
    assert store.publish(empty).size_bytes == 0
    assert store.publish(big).size_bytes == big.stat().st_size
    assert store.rehash(big_sha) == big_sha
    assert store.rehash(empty_sha) == empty_sha
    out = tmp_path / "big.out"
    store.fetch(big_sha, out)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == big_sha


def test_failed_write_leaves_no_object(kind: str, stores: Stores) -> None:
    """A source that dies in the middle of a multi-part write must not leave anything at the final key."""
    store = stores.open(kind)
    part = 5 * 2**20
    data = os.urandom(3 * part + 7)
    sha = hashlib.sha256(data).hexdigest()

    async def dies_at_third_part(start: int, end: int) -> bytes:
        if start >= 2 * part:
            raise ConnectionResetError("source connection reset mid-transfer")
        return data[start:end]

    with pytest.raises(ConnectionResetError):
        run(
            lambda: transfer(
                sha, len(data), dies_at_third_part, store.backend, store.key(sha), part_size=part
            )
        )
    assert not store.has(sha), f"{store.url} holds a truncated {sha} after a failed write"
    assert list(store.objects()) == []
    store.sweep(max_age_s=0)  # staging debris (temp files, orphaned parts) can be swept right away

    async def lies(start: int, end: int) -> bytes:  # whole, but not the bytes the address promises
        return bytes(end - start)

    with pytest.raises(Exception, match="hash to"):
        run(lambda: transfer(sha, len(data), lies, store.backend, store.key(sha), part_size=part))
    assert not store.has(sha), f"{store.url} committed bytes that do not match their address"


def test_fetch_detects_corruption(kind: str, stores: Stores, tmp_path: Path) -> None:
    store = stores.open(kind)
    local, sha = _blob(tmp_path, 100_000)
    store.publish(local)
    stores.raw_write(kind, store, sha, os.urandom(100_000))
    target = tmp_path / "fetched.bin"
    with pytest.raises(StorageError, match="hash mismatch") as caught:
        store.fetch(sha, target)
    assert caught.value.site == store.site
    assert caught.value.url == store.url
    assert store.site in str(caught.value)
    assert store.url in str(caught.value)
    assert not target.exists(), "a corrupt fetch must not leave the target behind"
    assert store.rehash(sha) != sha


def test_publish_and_copy_write_over_a_corrupt_copy_of_the_same_size(
    kind: str, stores: Stores, tmp_path: Path
) -> None:
    """A size check cannot tell bit rot from a copy: neither a publish nor a copy may skip over it."""
    src, dst = stores.open(kind, "src"), stores.open(kind, "dst")  # same endpoint: S3 copies server-side
    local, sha = _blob(tmp_path, 300_000)
    good = local.read_bytes()
    rotten = bytes([good[0] ^ 0x01]) + good[1:]
    src.publish(local)
    stores.raw_write(kind, src, sha, rotten)
    assert src.has(sha, 300_000)  # present and of the right size: only a re-read tells
    assert src.publish(local).sha256 == sha
    assert src.rehash(sha) == sha, f"publishing over a corrupt copy at {src.url} kept it"
    assert src.holds(sha, 300_000)

    dst.publish(local)
    stores.raw_write(kind, dst, sha, rotten)
    assert copy_object(sha, src, dst) == 300_000, "a corrupt copy at the destination is no copy"
    assert dst.rehash(sha) == sha
    assert copy_object(sha, src, dst) == 0

    stores.raw_write(kind, src, sha, rotten)  # now the source is rotten: nothing may land at dst
    dst.remove(sha)
    with pytest.raises(StorageError, match=f"site src .*stored bytes of {sha} do not match their address"):
        copy_object(sha, src, dst)
    assert not dst.has(sha), f"{dst.url} holds the rotten bytes of {sha}"


@pytest.mark.parametrize(("src_kind", "dst_kind"), list(itertools.product(KINDS, KINDS)))
def test_copy_between_backends(src_kind: str, dst_kind: str, stores: Stores, tmp_path: Path) -> None:
    src, dst = stores.open(src_kind, "src"), stores.open(dst_kind, "dst")
    local, sha = _blob(tmp_path, 256 * 1024 + 1)
    src.publish(local)
    assert copy_object(sha, src, dst) == local.stat().st_size
    assert copy_object(sha, src, dst) == 0, f"second copy {src.url} -> {dst.url} moved bytes"
    assert dst.rehash(sha) == sha


def test_large_copy_and_copy_many(kind: str, stores: Stores, tmp_path: Path) -> None:
    """Multi-part copies out of and into each backend, and many small objects at once."""
    other = {"memory": "s3", "file": "gcs", "s3": "azure", "azure": "file", "gcs": "s3"}[kind]
    src, mid, back = stores.open(kind, "src"), stores.open(other, "mid"), stores.open(kind, "back")
    big, big_sha = _blob(tmp_path, 18 * 2**20)
    src.publish(big)
    assert copy_object(big_sha, src, mid) == big.stat().st_size
    assert copy_object(big_sha, mid, back) == big.stat().st_size
    assert back.rehash(big_sha) == big_sha
    small = [src.publish(_blob(tmp_path, 10_000 + i)[0]).sha256 for i in range(12)]
    moved = copy_many([(sha, src, mid) for sha in small], workers=4)
    assert moved == [10_000 + i for i in range(12)]
    assert copy_many([(sha, src, mid) for sha in small]) == [0] * 12


def test_residency_is_enforced(kind: str, stores: Stores, tmp_path: Path) -> None:
    eu, us = stores.open(kind, "eu-site", "EU"), stores.open(kind, "us-site", "US")
    local, sha = _blob(tmp_path, 1000)
    eu.publish(local, residency=frozenset({"EU"}))
    with pytest.raises(StorageError, match=r"refusing to copy EU-resident data to site us-site \(US\)"):
        copy_object(sha, eu, us, residency=frozenset({"EU"}))
    with pytest.raises(StorageError, match=r"refusing to copy EU-resident data to site us-site \(US\)"):
        us.publish(local, residency=frozenset({"EU"}))
    with pytest.raises(StorageError, match="refusing to copy EU-resident"):
        dual_write(local, [eu, us], residency=frozenset({"EU"}))
    with pytest.raises(StorageError, match="refusing to copy EU-resident"):
        copy_many([(sha, eu, us)], residency=frozenset({"EU"}))
    assert not us.has(sha), "a refused copy must not have written anything"
    assert copy_object(sha, eu, us) > 0, "without residency the same copy is allowed"


def test_dual_write_and_failure_cleanup(kind: str, stores: Stores, tmp_path: Path) -> None:
    a, b = stores.open(kind, "primary"), stores.open("memory", "second")
    local, _sha = _blob(tmp_path, 6 * 2**20)
    info = dual_write(local, [a, b])
    assert verify(info.sha256, [a, b]) == {"primary": "verified", "second": "verified"}
    # A replica whose root is a regular file cannot be written: the error names it, nothing is claimed.
    (tmp_path / "not-a-dir").write_text("x")
    broken = open_store("broken", "file://not-a-dir/store", base_dir=tmp_path)
    fresh, fresh_sha = _blob(tmp_path, 3 * 2**20)
    with pytest.raises(StorageError, match=r"site broken \(file://not-a-dir/store\)") as caught:
        dual_write(fresh, [a, broken, b])
    assert "dual-write" in str(caught.value)
    assert "verified replicas: primary, second" in str(caught.value)
    assert not broken.has(fresh_sha)
    assert verify(fresh_sha, [a, broken]) == {"primary": "verified", "broken": "missing"}


def test_verify_and_repair(kind: str, stores: Stores, tmp_path: Path) -> None:
    a, b, c = stores.open(kind, "a"), stores.open("file", "b"), stores.open("memory", "c")
    local, sha = _blob(tmp_path, 2 * 2**20 + 3)
    size = local.stat().st_size
    dual_write(local, [a, b, c])
    stores.raw_write(kind, a, sha, os.urandom(size))  # same size: only a re-read can tell
    c.remove(sha)
    assert verify(sha, [a, b, c]) == {"a": "corrupt", "b": "verified", "c": "missing"}
    assert repair(sha, [a, b, c]) == {"a": size, "b": 0, "c": size}
    assert verify(sha, [a, b, c]) == {"a": "verified", "b": "verified", "c": "verified"}
    assert repair(sha, [a, b, c]) == {"a": 0, "b": 0, "c": 0}
    for store in (a, b, c):
        stores.raw_write(kind if store is a else ("file" if store is b else "memory"), store, sha, b"x")
    with pytest.raises(StorageError, match=f"cannot repair {sha}: no replica verifies"):
        repair(sha, [a, b, c])


def test_directory_artifacts(kind: str, stores: Stores, tmp_path: Path) -> None:
    tree = tmp_path / "dataset"
    (tree / "part=1").mkdir(parents=True)
    (tree / "part=1" / "a.parquet").write_bytes(os.urandom(5000))
    (tree / "b.txt").write_text("hello")
    (tree / "run.sh").write_text("#!/bin/sh\n")
    (tree / "run.sh").chmod(0o755)
    first = pack_dir(tree, tmp_path / "one.tar")
    os.utime(tree / "b.txt", (1, 1))  # mtimes must not change the hash
    second = pack_dir(tree, tmp_path / "two.tar")
    assert first.read_bytes() == second.read_bytes(), "pack_dir must be deterministic"
    store = stores.open(kind)
    info = store.publish(first)
    store.fetch(info.sha256, tmp_path / "fetched.tar")
    unpack(tmp_path / "fetched.tar", tmp_path / "restored")
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        restored = tmp_path / "restored" / path.relative_to(tree)
        assert restored.read_bytes() == path.read_bytes(), f"{restored} differs"
    assert os.access(tmp_path / "restored" / "run.sh", os.X_OK)


def test_bad_input_is_named(stores: Stores, tmp_path: Path) -> None:
    store = stores.open("memory", "m")
    with pytest.raises(StorageError, match=r"site m \(memory://.*'xyz' is not a SHA-256"):
        store.has("xyz")
    with pytest.raises(StorageError, match=r"site odd \(ftp://x/y\): unknown storage scheme"):
        open_store("odd", "ftp://x/y")
    with pytest.raises(StorageError, match=f"cannot read {tmp_path / 'nope'}"):
        store.publish(tmp_path / "nope")
    (tmp_path / "link-tree").mkdir()
    (tmp_path / "link-tree" / "l").symlink_to("/etc/hostname")
    with pytest.raises(StorageError, match="symbolic link"):
        pack_dir(tmp_path / "link-tree")


def test_wrong_credentials_are_named(stores: Stores) -> None:
    server = stores.server("s3")
    store = open_store("aws-x", server.url("p"), server.options(secret="wrong"))
    with pytest.raises(StorageError, match=r"site aws-x \(s3://stratus-test/p\).*access denied.*credentials"):
        store.info("0" * 64)


def test_missing_sdk_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['s3fs'] = None\n"
        "from stratus.storage import open_store\n"
        "from stratus.errors import StorageError\n"
        "try:\n    open_store('a', 's3://bucket/x')\n"
        "except StorageError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "site a (s3://bucket/x)" in out, out
    assert "pip install 'stratus[aws]'" in out, out


def test_s3_through_s3fs_alone_keeps_the_contract(stores: Stores, tmp_path: Path) -> None:
    """Options obstore cannot honour keep every request on s3fs: that path must keep the contract too."""
    server = stores.server("s3")
    # max_pool_connections is botocore's own knob (10 is its default): untranslated, so s3fs does it all.
    options = server.options(config_kwargs={**server.options()["config_kwargs"], "max_pool_connections": 10})
    classic = open_store("classic", server.url(f"t-{uuid.uuid4().hex[:12]}"), options)
    native, local_store = stores.open("s3", "native"), stores.open("file", "local")
    assert getattr(classic.backend, "native", "?") is None
    assert getattr(native.backend, "native", None) is not None
    blobs = [_blob(tmp_path, 20_000 + i) for i in range(3)]
    for path, sha in blobs:
        assert classic.publish(path).sha256 == sha
    assert classic.holds(blobs[0][1], 20_000)
    assert copy_many([(sha, classic, local_store) for _, sha in blobs]) == [20_000, 20_001, 20_002]
    assert copy_many([(sha, local_store, native) for _, sha in blobs]) == [20_000, 20_001, 20_002]
    assert {info.sha256 for info in classic.objects()} == {sha for _, sha in blobs}

    sha = blobs[0][1]
    stores.raw_write("s3", classic, sha, os.urandom(20_000))  # same size, other bytes
    with pytest.raises(StorageError, match="hash mismatch"):
        classic.fetch(sha, tmp_path / "fetched.bin")
    assert copy_object(sha, local_store, classic) == 20_000, "a corrupt copy at the destination is no copy"
    assert classic.rehash(sha) == sha
    classic.remove(sha)
    assert not classic.has(sha)
