"""Moving a run's bytes: inputs to the site that reads them, outputs to every site that must hold them.

Each copy is recorded (manifest transfer row and ledger row) after it verified, and a replica is marked
verified only once its bytes are known good, so the manifest never claims a copy that is not there.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stratus.errors import PolicyError, ResidencyError, StorageError
from stratus.policy import NO_POLICY, PolicyGate
from stratus.runner.billing import Biller
from stratus.runner.placement import Placer
from stratus.runner.residency import manifest_bound
from stratus.state import Repository, utcnow
from stratus.storage import (
    DEFAULT_PROBE_TIMEOUT_S,
    SiteStore,
    allows,
    copy_object,
    format_residency,
    hash_file,
    pack_dir,
    probe_all,
    quorum_write,
    strictest,
    unpack,
)
from stratus.storage.transfer import IntegrityError

__all__ = ["DataPlane", "Written"]


@dataclass(frozen=True)
class Written:
    """A replica this run wrote, for storage billing at the end of the run."""

    sha256: str
    site: str
    artifact: str
    size_bytes: int
    at: datetime
    step: str | None


class DataPlane:
    """Copies, fetches and publishes for one run, recording each in the manifest and the ledger."""

    def __init__(
        self,
        run_id: str,
        repo: Repository,
        stores: Mapping[str, SiteStore],
        placer: Placer,
        biller: Biller,
        policy: PolicyGate = NO_POLICY,
    ) -> None:
        self.run_id = run_id
        #: Asked before every copy between sites; a denial is a PolicyError (the step is refused).
        self.policy = policy
        self.repo = repo
        self.stores = stores
        self.placer = placer
        self.biller = biller
        self.written: list[Written] = []
        #: Each write first probes its stores this long, so a dead site is skipped (pending) at once.
        self.probe_timeout_s: float | None = DEFAULT_PROBE_TIMEOUT_S
        #: Told about every replica left pending (the runner turns these into run notes).
        self.on_note: Callable[[str], None] | None = None
        self._guard = threading.Lock()
        self._copying: dict[tuple[str, str], threading.Lock] = {}
        self._swept: set[str] = set()

    def ensure_at(
        self,
        sha256: str,
        site: str,
        *,
        artifact: str,
        step: str | None,
        reason: str,
        residency: frozenset[str],
    ) -> int:
        """Make ``site`` hold verified bytes of ``sha256``, copying from the cheapest verified holder.

        Two steps at one site reading the same input wait for one copy rather than making two.
        """
        with self._guard:
            lock = self._copying.setdefault((sha256, site), threading.Lock())
        with lock:
            return self._ensure_at(
                sha256, site, artifact=artifact, step=step, reason=reason, residency=residency
            )

    def _ensure_at(
        self,
        sha256: str,
        site: str,
        *,
        artifact: str,
        step: str | None,
        reason: str,
        residency: frozenset[str],
    ) -> int:
        residency = self._bound(sha256, residency, [site], artifact)
        replicas = self.repo.replicas(sha256)
        dst = self.stores[site]
        if replicas.get(site) == "verified" and dst.has(sha256):
            return 0
        holders = sorted(
            (s for s, status in replicas.items() if status == "verified" and s != site and s in self.stores),
            key=lambda s: self.placer.egress_usd_per_gb(s, site),
        )
        if not holders:
            # Not this site's fault (so no failover): the bytes are gone everywhere the manifest knew of.
            raise StorageError(
                f"no site holds a verified copy of {artifact} ({sha256}) to copy to {site}; "
                "run `stratus storage repair`, or rerun the step that produced it"
            )
        self._sweep_once(dst)
        failure: StorageError | PolicyError | None = None
        for holder in holders:
            try:
                self._ask(artifact, sha256, residency, holder, site, reason, step)
            except PolicyError as exc:  # another holder may be allowed to send it
                failure = failure or exc
                continue
            try:
                moved = copy_object(sha256, self.stores[holder], dst, residency)
            except StorageError as exc:
                if exc.site == site:
                    raise  # the destination is the problem: another source will not help
                failure = exc
                continue
            self.repo.set_replica(sha256, site, "verified")
            if moved:
                self._record_copy(sha256, artifact, holder, site, moved, reason, step)
            return moved
        assert failure is not None
        raise failure

    def ensure_replicas(
        self,
        sha256: str,
        sites: Sequence[str],
        *,
        min_replicas: int | None,
        artifact: str,
        step: str | None,
        residency: frozenset[str],
    ) -> None:
        """Make the listed ``sites`` hold bytes already stored elsewhere (a reused step's outputs).

        The same quorum as a fresh write: sites that cannot be written are recorded pending as long as
        ``min_replicas`` of them (default: all) hold verified bytes; below that, the first failure raises.
        """
        listed = list(dict.fromkeys(sites))
        if not listed:
            return
        health = probe_all([self.stores[s] for s in listed], self.probe_timeout_s or DEFAULT_PROBE_TIMEOUT_S)
        failures: dict[str, StorageError] = {}
        for site in listed:
            if not health[site].reachable:
                failures[site] = self.stores[site].error(f"unreachable ({health[site].detail})")
                continue
            try:
                self.ensure_at(
                    sha256,
                    site,
                    artifact=artifact,
                    step=step,
                    reason="replica (dual-write)",
                    residency=residency,
                )
            except StorageError as exc:
                failures[site] = exc
        need = len(listed) if min_replicas is None else min_replicas
        if len(listed) - len(failures) < need:
            raise next(iter(failures.values()))
        for site, failure in failures.items():
            if self.repo.mark_pending(sha256, site) and self.on_note is not None:
                self.on_note(f"{artifact}: replica at {site} pending ({failure.detail})")

    def stage(
        self,
        sha256: str,
        site: str,
        dest: Path,
        *,
        artifact: str,
        step: str | None,
        reason: str,
        residency: frozenset[str],
        note: Callable[[str], None],
    ) -> Path:
        """Make ``site`` hold verified bytes of ``sha256`` and fetch them to ``dest``.

        The fetch re-hashes what it reads. A replica at ``site`` that fails that check is not the site
        failing (moving the step elsewhere would not help, and may be impossible under residency): it
        is marked corrupt, replaced from another verified holder, and fetched again, and ``note`` says so.
        """

        def ensure() -> None:
            self.ensure_at(sha256, site, artifact=artifact, step=step, reason=reason, residency=residency)

        ensure()
        try:
            return self.fetch(sha256, site, dest)
        except StorageError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            mismatch = exc.detail
        self.repo.set_replica(sha256, site, "corrupt")
        note(
            f"{artifact}: the replica at {site} is corrupt ({mismatch}); "
            "marked corrupt, fetching a verified replica from another site"
        )
        try:
            ensure()
        except StorageError as exc:
            raise StorageError(
                f"the replica of {artifact} at {site} is corrupt ({mismatch}), and it cannot be replaced: "
                f"{exc.detail}",
                site=exc.site,
                url=exc.url,
            ) from exc
        return self.fetch(sha256, site, dest)

    def fetch(self, sha256: str, site: str, dest: Path) -> Path:
        """Bring the bytes from ``site``'s store to ``dest`` (a packed folder is unpacked there)."""
        store = self.stores[site]
        artifact = self.repo.artifact(sha256)
        if artifact is not None and artifact.is_dir:
            packed = dest.with_name(f".{dest.name}.tar")
            store.fetch(sha256, packed)
            unpack(packed, dest)
            packed.unlink(missing_ok=True)
        else:
            store.fetch(sha256, dest)
        return dest

    def publish(
        self,
        local: Path,
        sites: Sequence[str],
        *,
        artifact: str,
        step: str | None,
        residency: frozenset[str],
        min_replicas: int | None = None,
        resident_inputs: Mapping[str, str] | None = None,
    ) -> str:
        """Write ``local`` to ``sites`` (first is the producer's); return its hash once a quorum verifies.

        ``min_replicas`` counts the other listed sites (default: all of them). The producer's own site
        must hold the bytes unless it is itself listed again, where it counts like any other. Sites that
        could not be written are recorded pending, never verified, and reported through ``on_note``.

        ``resident_inputs`` (hash → what it is) are bytes this output may not be: the resident inputs of
        a step that declassifies. The bound written is the strictest of ``residency`` and the manifest's
        for the same bytes, so a copy of resident data never becomes unbound by being produced again.
        """
        is_dir = local.is_dir()
        path = pack_dir(local, local.with_name(f".{local.name}.tar")) if is_dir else local
        producer, listed = sites[0], list(dict.fromkeys(sites[1:]))
        stores = [self.stores[s] for s in dict.fromkeys(sites)]
        quorum = len(listed) if min_replicas is None else min_replicas
        must = () if producer in listed else (producer,)
        sha = hash_file(path)
        if resident_inputs and sha in resident_inputs:
            raise ResidencyError(
                f"{artifact} is declassified, but its bytes are exactly its input "
                f"{resident_inputs[sha]} (sha256 {sha}): a declassified output must be derived data "
                "(aggregates, a model), never a verbatim copy of resident data; nothing was published"
            )
        residency = self._bound(sha, residency, [store.site for store in stores], artifact)
        for site in listed:
            if site != producer:
                self._ask(artifact, sha, residency, producer, site, "replica (dual-write)", step)
        size = path.stat().st_size
        # Probe first: asking a dead store whether it already holds the bytes would cost an SDK's retries.
        health = probe_all(stores, self.probe_timeout_s) if self.probe_timeout_s is not None else {}
        live = [store for store in stores if store.site not in health or health[store.site].reachable]
        for store in live:
            self._sweep_once(store)
        held = {store.site: _holds(store, sha, size) for store in live}
        result = quorum_write(
            path, stores, residency, min_held=quorum + len(must), must_hold=must, health=health
        )
        info = result.info
        self.repo.add_artifact(
            info.sha256,
            size_bytes=info.size_bytes,
            is_dir=is_dir,
            producer=artifact,
            run_id=self.run_id,
            residency=format_residency(residency),
        )
        for site, why in result.failed.items():
            if self.repo.mark_pending(info.sha256, site) and self.on_note is not None:
                self.on_note(
                    f"{artifact}: replica at {site} pending ({why}); written once the site answers "
                    "(`stratus storage repair`, or the next run)"
                )
        for site in result.held:
            self.repo.set_replica(info.sha256, site, "verified")
            if not held.get(site):
                self.written.append(Written(info.sha256, site, artifact, info.size_bytes, utcnow(), step))
                if site != producer:
                    self._record_copy(
                        info.sha256, artifact, producer, site, info.size_bytes, "replica (dual-write)", step
                    )
        return info.sha256

    def _bound(
        self, sha256: str, declared: frozenset[str], sites: Sequence[str], artifact: str
    ) -> frozenset[str]:
        """The strictest bound of these bytes; a refusal (never retried) when a site is outside it."""
        residency = strictest(declared, manifest_bound(self.repo, sha256))
        for site in sites:
            where = self.stores[site].jurisdiction
            if not allows(where, residency):
                bound = "/".join(sorted(residency))
                why = "" if residency == declared else f" (the manifest binds these bytes to the {bound})"
                raise ResidencyError(
                    f"refusing to copy {artifact} (sha256 {sha256}) to site {site} "
                    f"({where or 'no declared jurisdiction'}): it is {bound}-resident{why}"
                )
        return residency

    def _ask(
        self,
        artifact: str,
        sha256: str,
        residency: frozenset[str],
        source: str,
        target: str,
        reason: str,
        step: str | None,
    ) -> None:
        """Put one copy to the policies; PolicyError (never retried) when they deny it."""
        if self.policy.enabled:
            self.policy.check_copy(
                self.placer.pipeline,
                self.run_id,
                artifact=artifact,
                sha256=sha256,
                residency=residency,
                source=source,
                target=target,
                reason=reason,
                step=step,
            )

    def record_exchange(self, step: str, from_site: str, to_site: str, size_bytes: int) -> None:
        """Traffic between a multi-site step's machines (model updates, gradients): a transfer, not data.

        It has no content hash (it was never an artifact), so no replica or residency applies to it.
        """
        self.repo.add_transfer(
            "-",
            artifact=f"{step}:exchange",
            from_site=from_site,
            to_site=to_site,
            size_bytes=size_bytes,
            reason="model exchange",
            run_id=self.run_id,
            step=step,
        )
        self.biller.transfer(
            step=step,
            artifact=f"{step}:exchange",
            from_site=from_site,
            to_site=to_site,
            size_bytes=size_bytes,
            usd_per_gb=self.placer.egress_usd_per_gb(from_site, to_site),
            at=utcnow(),
        )

    def _sweep_once(self, store: SiteStore) -> None:
        """Before this run first writes to a store, remove what killed writers left in its staging area.

        Safe beside live writers (see :meth:`SiteStore.sweep`); a store that cannot be swept is left to the
        write that follows, which reports the store's failure in its own words.
        """
        with self._guard:
            if store.site in self._swept:
                return
            self._swept.add(store.site)
        with contextlib.suppress(StorageError):
            store.sweep()

    def _record_copy(
        self, sha256: str, artifact: str, src: str, dst: str, size: int, reason: str, step: str | None
    ) -> None:
        self.repo.add_transfer(
            sha256,
            artifact=artifact,
            from_site=src,
            to_site=dst,
            size_bytes=size,
            reason=reason,
            run_id=self.run_id,
            step=step,
        )
        self.biller.transfer(
            step=step,
            artifact=artifact,
            from_site=src,
            to_site=dst,
            size_bytes=size,
            usd_per_gb=self.placer.egress_usd_per_gb(src, dst),
            at=utcnow(),
        )
        if reason != "replica (dual-write)":
            self.written.append(Written(sha256, dst, artifact, size, utcnow(), step))


def _holds(store: SiteStore, sha256: str, size: int) -> bool:
    # A store that cannot answer is treated as not holding it; dual_write then reports the real failure.
    try:
        return store.has(sha256, size)
    except StorageError:
        return False
