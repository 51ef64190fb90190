"""Quorum writes on real local stores: acknowledged once enough replicas verify, never a false "held".

A store rooted under a regular file cannot be written (nothing can be created beneath a file): that is
the failing replica here. Servers that die mid-write are in tests/integration/test_storage_degraded.py.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from stratus.errors import StorageError
from stratus.storage import SiteStore, open_store, quorum_write, verify


@pytest.fixture
def local(tmp_path: Path) -> Path:
    path = tmp_path / "features.bin"
    path.write_bytes(os.urandom(300_000))
    return path


def store(tmp_path: Path, site: str, *, broken: bool = False) -> SiteStore:
    if broken:
        (tmp_path / "blocker").write_text("a regular file: nothing can be created beneath it")
        return open_store(site, f"file://blocker/{site}", base_dir=tmp_path, jurisdiction="EU")
    return open_store(site, f"file://sites/{site}", base_dir=tmp_path, jurisdiction="EU")


def test_one_of_two_is_enough_with_min_one_and_the_other_is_reported_not_held(
    tmp_path: Path, local: Path
) -> None:
    good, bad = store(tmp_path, "gcp"), store(tmp_path, "aws", broken=True)
    result = quorum_write(local, [bad, good], min_held=1)
    sha = hashlib.sha256(local.read_bytes()).hexdigest()
    assert (result.info.sha256, result.info.size_bytes) == (sha, 300_000)
    assert result.held == ("gcp",)
    assert list(result.failed) == ["aws"]
    assert result.failed["aws"].startswith(f"publishing {local} as {sha} failed: ")
    assert verify(sha, [good, bad]) == {"gcp": "verified", "aws": "missing"}


def test_below_quorum_the_write_fails_naming_the_failed_site_and_the_verified_ones(
    tmp_path: Path, local: Path
) -> None:
    good, bad = store(tmp_path, "gcp"), store(tmp_path, "aws", broken=True)
    with pytest.raises(StorageError) as info:
        quorum_write(local, [good, bad])  # default: every store
    error = info.value
    assert (error.site, error.url) == ("aws", "file://blocker/aws")
    assert str(error).startswith(f"site aws (file://blocker/aws): dual-write of {local} (")
    assert str(error).endswith("; verified replicas: gcp")


def test_a_site_that_must_hold_it_fails_the_write_even_when_the_count_is_met(
    tmp_path: Path, local: Path
) -> None:
    producer = store(tmp_path, "onprem", broken=True)
    others = [store(tmp_path, "gcp"), store(tmp_path, "azure")]
    with pytest.raises(StorageError) as info:
        quorum_write(local, [*others, producer], min_held=2, must_hold=["onprem"])
    assert info.value.site == "onprem"  # named first, so the runner treats it as its own site failing
    assert "; verified replicas: gcp, azure; needed 2 of 3" in str(info.value)


def test_residency_is_checked_before_any_byte_moves_and_is_never_a_pending_replica(
    tmp_path: Path, local: Path
) -> None:
    eu = store(tmp_path, "gcp")
    us = open_store("aws", "file://sites/aws", base_dir=tmp_path, jurisdiction="US")
    with pytest.raises(StorageError, match="refusing to copy EU-resident data to site aws"):
        quorum_write(local, [eu, us], frozenset({"EU"}), min_held=1)
    assert list(eu.objects()) == []


def test_a_quorum_larger_than_the_stores_is_refused(tmp_path: Path, local: Path) -> None:
    with pytest.raises(StorageError, match="quorum 3 is not between 1 and 2 stores"):
        quorum_write(local, [store(tmp_path, "a"), store(tmp_path, "b")], min_held=3)
