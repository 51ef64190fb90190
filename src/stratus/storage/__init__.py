"""Sites' object stores: content-addressed artifacts, verified copies, replication, verify and repair.

    store = open_store("aws-us-east", "s3://bucket/stratus", {"endpoint_url": ...}, jurisdiction="US")
    info = store.publish(Path("model.onnx"))               # atomic; named by its SHA-256
    copy_object(info.sha256, store, other)                  # 0 bytes when `other` already holds it
    dual_write(Path("features.parquet"), [a, b], residency=frozenset({"EU"}))
    quorum_write(Path("features.parquet"), [a, b], min_held=1)   # .failed: the replicas left pending
    probe_all([a, b], timeout_s=2.0)                        # which sites answer right now

Backends: file (relative to the platform file's folder), memory, s3 (s3fs), gs/gcs (gcsfs), az/abfs (adlfs).
"""

from stratus.storage.artifacts import pack_dir, unpack
from stratus.storage.copy import copy_many, copy_object
from stratus.storage.health import DEFAULT_PROBE_TIMEOUT_S, SiteHealth, probe, probe_all
from stratus.storage.replication import (
    ReplicaStatus,
    Restored,
    WriteResult,
    dual_write,
    quorum_write,
    repair,
    restore,
    verify,
)
from stratus.storage.residency import allows, format_residency, parse_residency, strictest
from stratus.storage.store import ObjectInfo, SiteStore, hash_file, open_store
from stratus.storage.timeouts import Timeouts

__all__ = [
    "DEFAULT_PROBE_TIMEOUT_S",
    "ObjectInfo",
    "ReplicaStatus",
    "Restored",
    "SiteHealth",
    "SiteStore",
    "Timeouts",
    "WriteResult",
    "allows",
    "copy_many",
    "copy_object",
    "dual_write",
    "format_residency",
    "hash_file",
    "open_store",
    "pack_dir",
    "parse_residency",
    "probe",
    "probe_all",
    "quorum_write",
    "repair",
    "restore",
    "strictest",
    "unpack",
    "verify",
]
