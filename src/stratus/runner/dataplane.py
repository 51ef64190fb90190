"""Moving a run's bytes: inputs to the site that reads them, outputs to every site that must hold them.

Each copy is recorded (manifest transfer row and ledger row) after it verified, and a replica is marked
verified only once its bytes are known good, so the manifest never claims a copy that is not there.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stratus.errors import ResidencyError, StorageError
from stratus.runner.billing import Biller
from stratus.runner.placement import Placer
from stratus.runner.residency import manifest_bound
from stratus.state import Repository, utcnow
from stratus.storage import (
    SiteStore,
    allows,
    copy_object,
    dual_write,
    format_residency,
    hash_file,
    pack_dir,
    strictest,
    unpack,
)

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
        self, run_id: str, repo: Repository, stores: dict[str, SiteStore], placer: Placer, biller: Biller
    ) -> None:
        self.run_id = run_id
        self.repo = repo
        self.stores = stores
        self.placer = placer
        self.biller = biller
        self.written: list[Written] = []
        self._guard = threading.Lock()
        self._copying: dict[tuple[str, str], threading.Lock] = {}

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
        failure: StorageError | None = None
        for holder in holders:
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
        resident_inputs: Mapping[str, str] | None = None,
    ) -> str:
        """Dual-write ``local`` to ``sites`` (first is the producer's); return its hash once all verify.

        ``resident_inputs`` (hash → what it is) are bytes this output may not be: the resident inputs of
        a step that declassifies. The bound written is the strictest of ``residency`` and the manifest's
        for the same bytes, so a copy of resident data never becomes unbound by being produced again.
        """
        is_dir = local.is_dir()
        path = pack_dir(local, local.with_name(f".{local.name}.tar")) if is_dir else local
        stores = [self.stores[s] for s in dict.fromkeys(sites)]
        sha = hash_file(path)
        if resident_inputs and sha in resident_inputs:
            raise ResidencyError(
                f"{artifact} is declassified, but its bytes are exactly its input "
                f"{resident_inputs[sha]} (sha256 {sha}): a declassified output must be derived data "
                "(aggregates, a model), never a verbatim copy of resident data; nothing was published"
            )
        residency = self._bound(sha, residency, [store.site for store in stores], artifact)
        size = path.stat().st_size
        held = {store.site: _holds(store, sha, size) for store in stores}
        info = dual_write(path, stores, residency)
        self.repo.add_artifact(
            info.sha256,
            size_bytes=info.size_bytes,
            is_dir=is_dir,
            producer=artifact,
            run_id=self.run_id,
            residency=format_residency(residency),
        )
        primary = stores[0].site
        for store in stores:
            self.repo.set_replica(info.sha256, store.site, "verified")
            if not held[store.site]:
                self.written.append(
                    Written(info.sha256, store.site, artifact, info.size_bytes, utcnow(), step)
                )
                if store.site != primary:
                    self._record_copy(
                        info.sha256,
                        artifact,
                        primary,
                        store.site,
                        info.size_bytes,
                        "replica (dual-write)",
                        step,
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
