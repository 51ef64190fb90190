"""The manifest against the stores: list what is held where, re-hash it, restore what is missing or pending.

``verify`` trusts only bytes read back and hashed (never sizes or metadata) and writes what it found into
the manifest, except about a site that does not answer: each site is probed once, with a short timeout,
and an unreachable site's replicas are reported *unreachable* and left as recorded. ``repair`` copies from
a replica that verifies (the cheapest first), records each copy in the manifest and the FOCUS ledger, and
marks the repaired replica verified only after the copy itself verified. ``complete_pending`` is the part
of repair every ``stratus run`` does first: replicas a quorum write deferred, at sites that answer again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from stratus.catalog import Catalog
from stratus.config import Platform
from stratus.errors import StorageError
from stratus.planner.egress import egress_matrix
from stratus.policy import NO_POLICY, PolicyGate
from stratus.runner.billing import Biller
from stratus.state import Repository, utcnow
from stratus.storage import (
    DEFAULT_PROBE_TIMEOUT_S,
    SiteStore,
    allows,
    parse_residency,
    probe_all,
    restore,
    verify,
)

__all__ = [
    "UNDER_REPLICATED",
    "ArtifactState",
    "RepairLedger",
    "complete_pending",
    "inventory",
    "pending_notes",
    "repair_all",
    "sweep_all",
    "verify_all",
]

#: Replica states that mean "this site should hold the bytes and does not (yet)".
UNDER_REPLICATED = frozenset({"pending", "missing", "corrupt"})


@dataclass
class ArtifactState:
    """One artifact, the names runs gave it, and each replica's status (after a check, what it found)."""

    sha256: str
    size_bytes: int
    names: list[str]
    replicas: dict[str, str]
    repaired: dict[str, int] = field(default_factory=dict)  # site → bytes copied
    error: str | None = None
    residency: frozenset[str] = frozenset()  # the strictest bound of every artifact with these bytes

    @property
    def healthy(self) -> bool:
        """Every listed replica verified and nothing failed."""
        return self.error is None and all(s == "verified" for s in self.replicas.values())

    @property
    def under_replicated(self) -> bool:
        """Some site that should hold it does not: pending, missing or corrupt (unreachable is unknown)."""
        return any(s in UNDER_REPLICATED for s in self.replicas.values())

    def to_json(self) -> dict[str, Any]:
        """One entry of ``stratus storage ... --json``."""
        return {
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "names": self.names,
            "replicas": dict(self.replicas),
            "repaired": dict(self.repaired),
            "error": self.error,
            "residency": sorted(self.residency),
        }


@dataclass(frozen=True)
class RepairLedger:
    """How repair copies are billed: the platform's egress prices, and the run each copy is charged to.

    ``run_id`` None charges a copy to the run that produced the artifact (``stratus storage repair``
    completes that run's write); a run repairing at its start charges its own id.
    """

    platform: Platform
    egress_usd_per_gb: Callable[[str, str], Decimal]
    run_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_platform(cls, platform: Platform, catalog: Catalog) -> RepairLedger:
        """Prices from the platform's egress overrides, else the catalog's rules (as the planner's)."""
        sites = tuple(platform.sites)
        matrix = egress_matrix(platform, catalog.egress, sites)
        return cls(platform, lambda a, b: matrix.exact[sites.index(a)][sites.index(b)])

    def record(self, repo: Repository, sha256: str, artifact: str, src: str, dst: str, size: int) -> None:
        """One repair copy: a manifest transfer row and a FOCUS transfer row, charged to the same run."""
        producer = repo.artifact(sha256)
        run_id = self.run_id or (producer.run_id if producer else "repair")
        repo.add_transfer(
            sha256,
            artifact=artifact,
            from_site=src,
            to_site=dst,
            size_bytes=size,
            reason="repair",
            run_id=run_id,
            step=None,
        )
        Biller(repo.db, run_id, self.platform, self.tags).transfer(
            step=None,
            artifact=artifact,
            from_site=src,
            to_site=dst,
            size_bytes=size,
            usd_per_gb=self.egress_usd_per_gb(src, dst),
            at=utcnow(),
        )


def inventory(repo: Repository, site: str | None = None) -> list[ArtifactState]:
    """Every artifact in the manifest (with a replica at ``site``, when given), as last recorded.

    Under-replicated artifacts (a replica pending, missing or corrupt) come first, then oldest first.
    """
    found = []
    for artifact, replicas in repo.artifacts():
        if site is not None and site not in replicas:
            continue
        shown = {s: v for s, v in replicas.items() if site is None or s == site}
        names = repo.names_of(artifact.sha256)
        bound = parse_residency(artifact.residency)
        found.append(ArtifactState(artifact.sha256, artifact.size_bytes, names, shown, residency=bound))
    return sorted(found, key=lambda state: not state.under_replicated)


def _probe(stores: Mapping[str, SiteStore], sites: Iterable[str], timeout_s: float) -> dict[str, str]:
    """Probe each named site once; the unreachable ones, with why."""
    down: dict[str, str] = {}
    opened = []
    for name in dict.fromkeys(sites):
        try:
            opened.append(stores[name])
        except StorageError as exc:  # a store that cannot even be opened answers nothing either
            down[name] = exc.detail
    for name, health in probe_all(opened, timeout_s).items():
        if not health.reachable:
            down[name] = health.detail
    return down


def verify_all(
    repo: Repository,
    stores: Mapping[str, SiteStore],
    site: str | None = None,
    *,
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
    down: dict[str, str] | None = None,
) -> list[ArtifactState]:
    """Re-hash every recorded replica (at ``site``, when given); record verified, missing or corrupt.

    Sites are probed once first; an unreachable site's replicas show as ``unreachable`` and keep their
    recorded state, and so do those of a site that stops answering part way through (it is skipped from
    then on). A pending replica found absent stays pending. ``down`` (site → why), when given, receives
    every site found unreachable.
    """
    down = {} if down is None else down
    states = inventory(repo, site)
    down.update(_probe(stores, (s for st in states for s in st.replicas if s in stores), timeout_s))
    for state in states:
        unknown = [s for s in state.replicas if s not in stores]
        if unknown:
            state.error = f"site(s) {', '.join(unknown)} are not in the platform file"
        for name in state.replicas:
            if name in down:
                state.replicas[name] = "unreachable"
        known = [stores[s] for s in state.replicas if s in stores and s not in down]
        for name, status in verify(state.sha256, known).items():
            if status == "unreachable":
                down[name] = "stopped answering during verify"
            elif status == "missing" and state.replicas[name] == "pending":
                continue  # never written: still pending, not lost
            else:
                repo.set_replica(state.sha256, name, status)
            state.replicas[name] = status
        outside = [s.site for s in known if not allows(s.jurisdiction, state.residency)]
        if outside:
            bound = "/".join(sorted(state.residency))
            problem = (
                f"replica(s) at {', '.join(outside)} are outside these bytes' {bound} residency "
                "(written before the bound was known, or by hand): remove them from those sites"
            )
            state.error = f"{state.error}; {problem}" if state.error else problem
    return states


def _repair_one(
    repo: Repository,
    stores: Mapping[str, SiteStore],
    state: ArtifactState,
    targets: list[str],
    down: Mapping[str, str],
    ledger: RepairLedger | None,
    policy: PolicyGate = NO_POLICY,
) -> None:
    """Copy onto ``targets`` from the cheapest verified holder that answers; record what verified.

    A target the policy denies is left as it is, with the policy's message in ``state.error``.
    """
    recorded = repo.replicas(state.sha256)
    holders = [s for s, v in recorded.items() if v == "verified" and s in stores and s not in down]
    if ledger is not None:
        holders.sort(key=lambda s: ledger.egress_usd_per_gb(s, targets[0]))
    away = sorted(s for s, v in recorded.items() if v == "verified" and s in down)
    if not holders and away:
        state.error = (
            f"cannot repair {state.sha256} now: every verified copy is at an unreachable site "
            f"({', '.join(away)}); retry once it answers"
        )
        return
    artifact = repo.artifact(state.sha256)
    residency = parse_residency(artifact.residency) if artifact else state.residency
    name = state.names[0] if state.names else state.sha256
    denied = {
        target: why
        for target in targets
        if (why := policy.repair_denial(name, state.sha256, residency, target, holders)) is not None
    }
    if denied:
        state.error = "; ".join(denied.values())
        targets = [t for t in targets if t not in denied]
        if not targets:
            return
    try:
        done = restore(state.sha256, [stores[s] for s in [*holders, *targets]], residency)
    except StorageError as exc:
        state.error = str(exc)
        return
    for target in targets:
        if target not in done.moved:  # went away between the probe and the copy: still to do
            state.replicas[target] = "unreachable"
            continue
        repo.set_replica(state.sha256, target, "verified")
        state.replicas[target] = "verified"
        state.repaired[target] = done.moved[target]
        if not done.moved[target]:
            continue
        if ledger is not None:
            ledger.record(repo, state.sha256, name, done.source, target, done.moved[target])
        else:
            repo.add_transfer(
                state.sha256,
                artifact=name,
                from_site=done.source,
                to_site=target,
                size_bytes=done.moved[target],
                reason="repair",
                run_id=None,
                step=None,
            )


def repair_all(
    repo: Repository,
    stores: Mapping[str, SiteStore],
    site: str | None = None,
    *,
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
    ledger: RepairLedger | None = None,
    down: dict[str, str] | None = None,
    policy: PolicyGate = NO_POLICY,
) -> list[ArtifactState]:
    """Verify, then copy onto every pending, missing or corrupt replica (at ``site``) from a good one.

    Unreachable sites are skipped and keep their pending replicas for next time. With ``ledger``, each
    copy is a manifest transfer and a FOCUS row; without, only the manifest row (no run is charged).
    Each copy is put to ``policy`` first; a denied one is not made and its artifact's error says why.
    """
    down = {} if down is None else down
    states = verify_all(repo, stores, site, timeout_s=timeout_s, down=down)
    broken = [state for state in states if state.under_replicated]
    probed = {s for state in states for s in state.replicas}
    holders = {s for state in broken for s, v in repo.replicas(state.sha256).items() if v == "verified"}
    down.update(_probe(stores, sorted(s for s in holders - probed if s in stores), timeout_s))
    for state in broken:
        targets = [s for s, v in state.replicas.items() if v in UNDER_REPLICATED and s in stores]
        if targets:
            _repair_one(repo, stores, state, targets, down, ledger, policy)
    return states


def complete_pending(
    repo: Repository,
    stores: Mapping[str, SiteStore],
    *,
    ledger: RepairLedger | None = None,
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
    policy: PolicyGate = NO_POLICY,
) -> tuple[list[ArtifactState], dict[str, str]]:
    """Write the replicas quorum writes left pending, at the sites that answer now (one probe each).

    Returns the artifacts it looked at (``repaired`` and ``error`` say what happened) and the sites
    still unreachable, whose replicas stay pending. Nothing else is re-hashed: this is cheap enough to
    run before every run.
    """
    pending = repo.pending()
    if not pending:
        return [], {}
    holders = {s for sha in pending for s, v in repo.replicas(sha).items() if v == "verified" and s in stores}
    wanted = {s for sites in pending.values() for s in sites if s in stores}
    down = _probe(stores, sorted(wanted | holders), timeout_s)
    states = []
    for sha, sites in pending.items():
        artifact = repo.artifact(sha)
        state = ArtifactState(
            sha, artifact.size_bytes if artifact else 0, repo.names_of(sha), dict.fromkeys(sites, "pending")
        )
        states.append(state)
        targets = [s for s in sites if s in stores and s not in down]
        for s in sites:
            if s in down:
                state.replicas[s] = "unreachable"
        if targets:
            _repair_one(repo, stores, state, targets, down, ledger, policy)
    return states, down


def pending_notes(states: list[ArtifactState], down: Mapping[str, str]) -> list[str]:
    """What :func:`complete_pending` did, in a few lines for a run's notes (nothing when nothing was due)."""
    notes = []
    repaired = [(state, site, size) for state in states for site, size in state.repaired.items()]
    if repaired:
        copied = sum(size for _, _, size in repaired)
        sites = ", ".join(sorted({site for _, site, _ in repaired}))
        notes.append(f"repaired {len(repaired)} pending replica(s) at {sites} ({copied} bytes copied)")
    waiting = sum(1 for state in states for v in state.replicas.values() if v == "unreachable")
    if waiting:
        why = "; ".join(f"{site}: {detail}" for site, detail in sorted(down.items()))
        notes.append(f"{waiting} replica(s) still pending: site(s) unreachable ({why})")
    notes.extend(
        f"repair of {state.names[0] if state.names else state.sha256}: {state.error}"
        for state in states
        if state.error
    )
    return notes


def sweep_all(stores: Mapping[str, SiteStore], site: str | None = None) -> dict[str, int]:
    """Remove the staging debris killed writers left in every store (or ``site``'s); files removed per site.

    Safe while runs write to the same stores (see :meth:`SiteStore.sweep`). A store that cannot be
    reached is skipped: its artifacts' errors already name it.
    """
    removed: dict[str, int] = {}
    for name, store in stores.items():
        if site is not None and name != site:
            continue
        try:
            removed[name] = store.sweep()
        except StorageError:
            continue
    return removed
