"""Every read and write of the run manifest, each write one short transaction.

The runner calls these in the order "act, then record": a state change is committed before the action it
records is acknowledged to anyone, so after ``kill -9`` the database never claims more than happened.
Inserts of content-addressed rows are idempotent: producing the same bytes twice is one artifact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stratus.redact import redact
from stratus.state.db import Base, Database
from stratus.state.models import (
    ArtifactName,
    ArtifactRow,
    CancelRow,
    DatasetRow,
    ReplicaRow,
    ReplicaState,
    RunRow,
    RunStatus,
    StepRunRow,
    StepStatus,
    TransferRow,
    utcnow,
)

__all__ = ["DONE", "Repository"]

#: Step attempt statuses that complete a step within its run.
DONE: tuple[StepStatus, ...] = ("succeeded", "cached")


class Repository:
    """The manifest of one state database: runs, attempts, artifacts, replicas, transfers, datasets."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- runs ----------------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        *,
        pipeline: str,
        pipeline_file: str,
        platform_file: str,
        objective: str,
        runner: str,
    ) -> None:
        """Record a new run as running, driven by ``runner`` ("host:pid")."""
        row = RunRow(
            id=run_id,
            pipeline=pipeline,
            pipeline_file=pipeline_file,
            platform_file=platform_file,
            objective=objective,
            status="running",
            runner=runner,
            created_at=utcnow(),
        )
        with self.db.session() as session, session.begin():
            session.add(row)

    def run(self, run_id: str) -> RunRow | None:
        """The run, or None when no run has that id."""
        with self.db.session() as session:
            return session.get(RunRow, run_id)

    def runs(self) -> list[RunRow]:
        """Every run, newest first."""
        with self.db.session() as session:
            return list(session.scalars(select(RunRow).order_by(RunRow.created_at.desc())))

    def reopen_run(self, run_id: str, runner: str) -> int:
        """Mark the run running again (now driven by ``runner``) and its cut-short attempts interrupted."""
        with self.db.session() as session, session.begin():
            session.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(status="running", error=None, finished_at=None, runner=runner)
            )
            session.execute(delete(CancelRow).where(CancelRow.run_id == run_id))  # a resume runs again
            result = session.execute(
                update(StepRunRow)
                .where(StepRunRow.run_id == run_id, StepRunRow.status == "running")
                .values(status="interrupted", finished_at=utcnow(), error="the runner stopped")
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def request_cancel(self, run_id: str, reason: str) -> None:
        """Ask the run's runner to stop it (it looks between steps and while they run); idempotent."""
        with self.db.session() as session, session.begin():
            if session.get(CancelRow, run_id) is None:
                session.add(CancelRow(run_id=run_id, requested_at=utcnow(), reason=redact(reason)))

    def cancel_requested(self, run_id: str) -> str | None:
        """Why the run is to stop, when someone asked; None otherwise."""
        with self.db.session() as session:
            row = session.get(CancelRow, run_id)
            return None if row is None else row.reason

    def cancel_orphan(self, run_id: str, reason: str) -> None:
        """Mark a run whose runner is gone cancelled, with its cut-short attempts: nobody else will."""
        with self.db.session() as session, session.begin():
            session.execute(
                update(StepRunRow)
                .where(StepRunRow.run_id == run_id, StepRunRow.status == "running")
                .values(status="cancelled", finished_at=utcnow(), error=redact(reason))
            )
            session.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(status="cancelled", error=redact(reason), finished_at=utcnow())
            )

    def finish_run(self, run_id: str, status: RunStatus, error: str | None = None) -> None:
        """Record how the run ended."""
        with self.db.session() as session, session.begin():
            session.execute(
                update(RunRow)
                .where(RunRow.id == run_id)
                .values(status=status, error=redact(error) if error else error, finished_at=utcnow())
            )

    # -- step attempts -------------------------------------------------------------------------------

    def start_attempt(
        self,
        run_id: str,
        step: str,
        *,
        attempt: int,
        site: str,
        offering: str,
        pricing: str,
        cache_key: str,
        log_path: str | None,
    ) -> int:
        """Record an attempt as running before it starts; returns its id."""
        row = StepRunRow(
            run_id=run_id,
            step=step,
            attempt=attempt,
            site=site,
            offering=offering,
            pricing=pricing,
            status="running",
            cache_key=cache_key,
            started_at=utcnow(),
            log_path=log_path,
        )
        with self.db.session() as session, session.begin():
            session.add(row)
            session.flush()
            return row.id

    def fail_attempt(
        self,
        attempt_id: int,
        status: StepStatus,
        error: str,
        *,
        duration_s: float | None = None,
        peak_memory_bytes: int | None = None,
        exit_code: int | None = None,
    ) -> None:
        """Record an attempt that ended without success (failed, preempted, cancelled)."""
        with self.db.session() as session, session.begin():
            session.execute(
                update(StepRunRow)
                .where(StepRunRow.id == attempt_id)
                .values(
                    status=status,
                    error=redact(error),  # vendor messages end up here: never a credential
                    finished_at=utcnow(),
                    duration_s=duration_s,
                    peak_memory_bytes=peak_memory_bytes,
                    exit_code=exit_code,
                )
            )

    def succeed_attempt(
        self,
        attempt_id: int,
        run_id: str,
        *,
        duration_s: float,
        peak_memory_bytes: int,
        metrics: Mapping[str, Any],
        outputs: Mapping[str, str],
        refs: Mapping[str, str],
        sites: Sequence[str] = (),
    ) -> None:
        """Mark the attempt succeeded and name its outputs in the run, together or not at all.

        ``sites``: every site a multi-site attempt ran at (what a registered model's lineage names).
        """
        with self.db.session() as session, session.begin():
            session.execute(
                update(StepRunRow)
                .where(StepRunRow.id == attempt_id)
                .values(
                    status="succeeded",
                    finished_at=utcnow(),
                    duration_s=duration_s,
                    peak_memory_bytes=peak_memory_bytes,
                    exit_code=0,
                    metrics=dict(metrics),
                    outputs=dict(outputs),
                    sites=list(sites),
                )
            )
            _name_all(session, run_id, refs)

    def record_cached(
        self,
        run_id: str,
        step: str,
        *,
        source: StepRunRow,
        refs: Mapping[str, str],
    ) -> None:
        """The step reuses ``source``'s outputs: one cached attempt row plus the names, in one transaction."""
        now = utcnow()
        row = StepRunRow(
            run_id=run_id,
            step=step,
            attempt=0,
            site=source.site,
            offering=source.offering,
            pricing=source.pricing,
            status="cached",
            cache_key=source.cache_key,
            started_at=now,
            finished_at=now,
            duration_s=0.0,
            exit_code=0,
            metrics=source.metrics,
            outputs=source.outputs,
            sites=source.sites,
            cached_from=source.cached_from or source.run_id,
            log_path=source.log_path,
        )
        with self.db.session() as session, session.begin():
            session.add(row)
            _name_all(session, run_id, refs)

    def attempts(self, run_id: str) -> list[StepRunRow]:
        """Every attempt of the run, in the order they started."""
        with self.db.session() as session:
            query = select(StepRunRow).where(StepRunRow.run_id == run_id).order_by(StepRunRow.id)
            return list(session.scalars(query))

    def cached(self, cache_key: str) -> list[StepRunRow]:
        """Successful attempts with this cache key in any run, newest first."""
        with self.db.session() as session:
            query = (
                select(StepRunRow)
                .where(StepRunRow.cache_key == cache_key, StepRunRow.status == "succeeded")
                .order_by(StepRunRow.id.desc())
            )
            return list(session.scalars(query))

    # -- artifacts, names, replicas ------------------------------------------------------------------

    def add_artifact(
        self, sha256: str, *, size_bytes: int, is_dir: bool, producer: str, run_id: str, residency: str | None
    ) -> None:
        """Record bytes by hash; a second producer of the same bytes adds only its residency.

        One row stands for every artifact with these bytes, so its residency is the strictest of theirs:
        an EU-resident artifact stays EU-resident however many unbound copies of its bytes are produced.
        """
        row = ArtifactRow(
            sha256=sha256,
            size_bytes=size_bytes,
            is_dir=is_dir,
            producer=producer,
            run_id=run_id,
            residency=residency,
            created_at=utcnow(),
        )
        _insert_once(self.db, row, ArtifactRow, sha256)
        if residency:
            with self.db.session() as session, session.begin():
                found = session.get(ArtifactRow, sha256)
                if found is not None:
                    found.residency = _bound_union(found.residency, residency)

    def artifact(self, sha256: str) -> ArtifactRow | None:
        """The artifact with this hash, or None."""
        with self.db.session() as session:
            return session.get(ArtifactRow, sha256)

    def resolve(self, run_id: str, ref: str) -> str | None:
        """The hash a reference names in a run, or None when the run has not produced it yet."""
        with self.db.session() as session:
            row = session.get(ArtifactName, (run_id, ref))
            return row.sha256 if row else None

    def names(self, run_id: str) -> dict[str, str]:
        """Every reference the run has bound, to its hash."""
        with self.db.session() as session:
            rows = session.scalars(select(ArtifactName).where(ArtifactName.run_id == run_id))
            return {row.ref: row.sha256 for row in rows}

    def name(self, run_id: str, ref: str, sha256: str) -> None:
        """Bind a reference in a run (datasets, at the start of the run)."""
        with self.db.session() as session, session.begin():
            _name_all(session, run_id, {ref: sha256})

    def set_replica(self, sha256: str, site: str, status: ReplicaState) -> None:
        """Record what a site holds (after the copy or check that showed it); safe to race."""
        try:
            with self.db.session() as session, session.begin():
                row = session.get(ReplicaRow, (sha256, site))
                if row is None:
                    session.add(ReplicaRow(sha256=sha256, site=site, status=status, checked_at=utcnow()))
                    return
                row.status, row.checked_at = status, utcnow()
        except IntegrityError:  # inserted by another thread in between: update what it wrote
            with self.db.session() as session, session.begin():
                session.execute(
                    update(ReplicaRow)
                    .where(ReplicaRow.sha256 == sha256, ReplicaRow.site == site)
                    .values(status=status, checked_at=utcnow())
                )

    def mark_pending(self, sha256: str, site: str) -> bool:
        """Record that ``site`` should hold ``sha256`` but does not yet (its write was deferred).

        A replica already recorded verified stays verified: a failed write proves nothing about bytes an
        earlier check found there. Returns whether the replica is now pending.
        """
        try:
            with self.db.session() as session, session.begin():
                row = session.get(ReplicaRow, (sha256, site))
                if row is None:
                    session.add(ReplicaRow(sha256=sha256, site=site, status="pending", checked_at=utcnow()))
                    return True
                if row.status == "verified":
                    return False
                row.status, row.checked_at = "pending", utcnow()
                return True
        except IntegrityError:  # inserted by another thread in between: retry against its row
            return self.mark_pending(sha256, site)

    def pending(self) -> dict[str, list[str]]:
        """Replicas still to be written, sha256 → sites, oldest artifact first."""
        with self.db.session() as session:
            query = (
                select(ReplicaRow.sha256, ReplicaRow.site)
                .where(ReplicaRow.status == "pending")
                .order_by(ReplicaRow.checked_at, ReplicaRow.site)
            )
            found: dict[str, list[str]] = {}
            for sha, site in session.execute(query):
                found.setdefault(sha, []).append(site)
            return found

    def replicas(self, sha256: str) -> dict[str, str]:
        """Site → replica status for one artifact."""
        with self.db.session() as session:
            rows = session.scalars(select(ReplicaRow).where(ReplicaRow.sha256 == sha256))
            return {row.site: row.status for row in rows}

    def artifacts(self) -> list[tuple[ArtifactRow, dict[str, str]]]:
        """Every artifact with its replicas' statuses, oldest first."""
        with self.db.session() as session:
            artifacts = list(session.scalars(select(ArtifactRow).order_by(ArtifactRow.created_at)))
            replicas: dict[str, dict[str, str]] = {}
            for row in session.scalars(select(ReplicaRow).order_by(ReplicaRow.site)):
                replicas.setdefault(row.sha256, {})[row.site] = row.status
        return [(a, replicas.get(a.sha256, {})) for a in artifacts]

    def names_of(self, sha256: str) -> list[str]:
        """The references that have named these bytes, in any run."""
        with self.db.session() as session:
            rows = session.scalars(select(ArtifactName.ref).where(ArtifactName.sha256 == sha256).distinct())
            return sorted(rows)

    # -- transfers -----------------------------------------------------------------------------------

    def add_transfer(
        self,
        sha256: str,
        *,
        artifact: str,
        from_site: str,
        to_site: str,
        size_bytes: int,
        reason: str,
        run_id: str | None,
        step: str | None,
    ) -> None:
        """Record one copy between sites."""
        row = TransferRow(
            sha256=sha256,
            artifact=artifact,
            from_site=from_site,
            to_site=to_site,
            bytes=size_bytes,
            reason=reason,
            run_id=run_id,
            step=step,
            at=utcnow(),
        )
        with self.db.session() as session, session.begin():
            session.add(row)

    def transfers(self, run_id: str | None = None) -> list[TransferRow]:
        """Copies, of one run or of all, oldest first."""
        with self.db.session() as session:
            query = select(TransferRow).order_by(TransferRow.id)
            if run_id is not None:
                query = query.where(TransferRow.run_id == run_id)
            return list(session.scalars(query))

    # -- datasets ------------------------------------------------------------------------------------

    def dataset(self, pipeline: str, name: str) -> DatasetRow | None:
        """The bytes a pipeline's dataset currently is, or None when never made or registered."""
        with self.db.session() as session:
            return session.get(DatasetRow, (pipeline, name))

    def set_dataset(self, pipeline: str, name: str, *, sha256: str, site: str, make_key: str | None) -> None:
        """Point a dataset at new bytes (after they are published and replicated)."""
        with self.db.session() as session, session.begin():
            row = session.get(DatasetRow, (pipeline, name))
            if row is None:
                row = DatasetRow(pipeline=pipeline, name=name, created_at=utcnow(), sha256=sha256, site=site)
                session.add(row)
            row.sha256, row.site, row.make_key, row.created_at = sha256, site, make_key, utcnow()


def _name_all(session: Session, run_id: str, refs: Mapping[str, str]) -> None:
    for ref, sha in refs.items():
        row = session.get(ArtifactName, (run_id, ref))
        if row is None:
            session.add(ArtifactName(run_id=run_id, ref=ref, sha256=sha))
        else:
            row.sha256 = sha


def _bound_union(*bounds: str | None) -> str | None:
    """Residency columns (``"EU"``, ``"EU,UK"``, NULL) joined: every jurisdiction any of them names."""
    jurisdictions = {j.strip() for bound in bounds for j in (bound or "").split(",") if j.strip()}
    return ",".join(sorted(jurisdictions)) or None


def _insert_once(db: Database, row: Base, model: type[Base], key: object) -> None:
    with db.session() as session:
        if session.get(model, key) is not None:
            return
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # another thread inserted the same bytes first: same row, same meaning
            session.rollback()
