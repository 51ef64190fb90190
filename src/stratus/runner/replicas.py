"""The manifest against the stores: list what is held where, re-hash it, restore what is missing or corrupt.

``verify`` trusts only bytes read back and hashed (never sizes or metadata) and writes what it found into
the manifest; ``repair`` copies from a replica that verifies, records each copy, and marks the repaired
replica verified only after the copy itself verified.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stratus.errors import StorageError
from stratus.state import Repository
from stratus.storage import SiteStore, allows, parse_residency, repair, verify

__all__ = ["ArtifactState", "inventory", "repair_all", "verify_all"]


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


def inventory(repo: Repository, site: str | None = None) -> list[ArtifactState]:
    """Every artifact in the manifest (with a replica at ``site``, when given), as last recorded."""
    found = []
    for artifact, replicas in repo.artifacts():
        if site is not None and site not in replicas:
            continue
        shown = {s: v for s, v in replicas.items() if site is None or s == site}
        names = repo.names_of(artifact.sha256)
        bound = parse_residency(artifact.residency)
        found.append(ArtifactState(artifact.sha256, artifact.size_bytes, names, shown, residency=bound))
    return found


def verify_all(
    repo: Repository, stores: Mapping[str, SiteStore], site: str | None = None
) -> list[ArtifactState]:
    """Re-hash every recorded replica (at ``site``, when given) and record verified, missing or corrupt."""
    states = inventory(repo, site)
    for state in states:
        known = [stores[s] for s in state.replicas if s in stores]
        unknown = [s for s in state.replicas if s not in stores]
        if unknown:
            state.error = f"site(s) {', '.join(unknown)} are not in the platform file"
        for name, status in verify(state.sha256, known).items():
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


def repair_all(
    repo: Repository, stores: Mapping[str, SiteStore], site: str | None = None
) -> list[ArtifactState]:
    """Verify, then re-copy every missing or corrupt replica (at ``site``, when given) from a good one."""
    states = verify_all(repo, stores, site)
    for state in states:
        if state.healthy:
            continue
        everywhere = repo.replicas(state.sha256)
        good = [s for s, v in everywhere.items() if v == "verified" and s in stores]
        broken = [s for s, v in state.replicas.items() if v != "verified" and s in stores]
        if not broken:
            continue
        residency = state.residency
        involved = [stores[s] for s in [*good, *broken]]  # repair copies from the first that verifies
        try:
            moved = repair(state.sha256, involved, residency)
        except StorageError as exc:
            state.error = str(exc)
            continue
        name = state.names[0] if state.names else state.sha256
        for target in broken:
            repo.set_replica(state.sha256, target, "verified")
            state.replicas[target] = "verified"
            state.repaired[target] = moved.get(target, 0)
            if moved.get(target):
                repo.add_transfer(
                    state.sha256,
                    artifact=name,
                    from_site=good[0],
                    to_site=target,
                    size_bytes=moved[target],
                    reason="repair",
                    run_id=None,
                    step=None,
                )
    return states
