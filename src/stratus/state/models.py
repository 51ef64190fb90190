"""The run manifest: runs, step attempts, artifacts, their names, replicas, transfers and datasets.

Artifacts are keyed by SHA-256, so the same bytes are one row however many runs produce or reuse them:
that is what makes "no duplicated artifacts" a database constraint rather than a hope. Everything else
points at runs and hashes by value (no ORM relationships), so each state change is one small INSERT or
UPDATE that a ``kill -9`` either committed or did not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from stratus.state.db import Base, JsonText, UtcDateTime

__all__ = [
    "ArtifactName",
    "ArtifactRow",
    "AuditRow",
    "CancelRow",
    "DatasetRow",
    "ReplicaRow",
    "ReplicaState",
    "RunRow",
    "RunStatus",
    "StepRunRow",
    "StepStatus",
    "TransferRow",
    "UtcDateTime",
    "utcnow",
]

#: ``cancelled``: stopped on request (``stratus runs cancel``); it can be resumed like a failed run.
RunStatus = Literal["running", "succeeded", "failed", "cancelled"]
#: ``interrupted``: the runner died while this attempt ran (found so on --resume).
StepStatus = Literal["running", "succeeded", "cached", "failed", "preempted", "interrupted", "cancelled"]
ReplicaState = Literal["verified", "missing", "corrupt", "pending"]


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (what every timestamp column stores)."""
    return datetime.now(UTC)


class RunRow(Base):
    """One execution of a pipeline; ``--resume`` continues the same row."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(128))
    pipeline_file: Mapped[str] = mapped_column(Text)
    platform_file: Mapped[str] = mapped_column(Text)
    objective: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    runner: Mapped[str | None] = mapped_column(String(160), nullable=True)  # "host:pid" driving it now
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class CancelRow(Base):
    """A request to stop a run, written by ``stratus runs cancel`` and read by the run's runner.

    A row of its own (not a column of ``runs``) so existing state databases need no migration, and so
    the request reaches a runner on another host through the database they share.
    """

    __tablename__ = "run_cancels"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(Text)  # "cancelled by alice" (what the run's error will say)


class StepRunRow(Base):
    """One attempt of one step (or of making a dataset, step ``dataset:NAME``) in a run.

    Its JSON columns read back as values: ``metrics`` (what the step returned), ``outputs`` (output name →
    sha256) and ``sites`` (every site a multi-site attempt ran a process at, coordinator first; empty for
    a single-site attempt, whose one site is ``site``).
    """

    __tablename__ = "step_runs"
    __table_args__ = (
        Index("ix_step_runs_run_step", "run_id", "step"),
        Index("ix_step_runs_cache_key", "cache_key", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(160))
    attempt: Mapped[int] = mapped_column(Integer)
    site: Mapped[str] = mapped_column(String(128))
    offering: Mapped[str] = mapped_column(String(128))
    pricing: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    cache_key: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column("metrics_json", JsonText(dict), default=dict)
    outputs: Mapped[dict[str, str]] = mapped_column("outputs_json", JsonText(dict), default=dict)
    cached_from: Mapped[str | None] = mapped_column(String(64), nullable=True)  # run id reused
    log_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Added after the first release: stratus.state.upgrade adds it to older databases.
    sites: Mapped[list[str]] = mapped_column("sites_json", JsonText(list), default=list, server_default="[]")


class ArtifactRow(Base):
    """Bytes the platform holds, named by their hash; one row however often they are produced."""

    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    is_dir: Mapped[bool] = mapped_column(Boolean, default=False)  # a packed folder: unpack on fetch
    producer: Mapped[str] = mapped_column(String(160))  # "step.output" or "dataset:NAME"
    run_id: Mapped[str] = mapped_column(String(64))  # the run that first produced it
    residency: Mapped[str | None] = mapped_column(String(64), nullable=True)  # "EU", "EU,UK", or None
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ArtifactName(Base):
    """What a reference (``dataset:raw``, ``ingest.transactions``) meant in one run."""

    __tablename__ = "artifact_names"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ref: Mapped[str] = mapped_column(String(160), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)


class ReplicaRow(Base):
    """One site's copy of an artifact and what was last learnt about it."""

    __tablename__ = "replicas"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime)


class TransferRow(Base):
    """Every copy between sites (zero-byte copies, where the destination already held it, are skipped)."""

    __tablename__ = "transfers"
    __table_args__ = (Index("ix_transfers_run", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64))
    artifact: Mapped[str] = mapped_column(String(160))
    from_site: Mapped[str] = mapped_column(String(128))
    to_site: Mapped[str] = mapped_column(String(128))
    bytes: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(64))  # "input of STEP", "replica (dual-write)", "repair"
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    step: Mapped[str | None] = mapped_column(String(160), nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class DatasetRow(Base):
    """Which bytes a pipeline's dataset currently is; ``make_key`` says which recipe made them."""

    __tablename__ = "datasets"

    pipeline: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    site: Mapped[str] = mapped_column(String(128))
    make_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditRow(Base):
    """One state-changing command: who ran it, what, when, with which (redacted) arguments, and how it
    ended. Appended by the CLI (stratus.cli.audit) and never updated; created if missing like every table."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(160))
    command: Mapped[str] = mapped_column(String(160))  # "serve drain", "models promote"
    arguments: Mapped[str] = mapped_column(Text)  # JSON list, redacted
    outcome: Mapped[str] = mapped_column(String(16))  # "ok" | "failed"
    exit_code: Mapped[int] = mapped_column(Integer)
