"""Fetch an artifact's bytes out of the platform, by name or hash, from any site that holds them.

What ``stratus storage get`` and ``cat`` do, so a user never writes a boto3 or GCS script to look at a
model or a report: the manifest says which sites hold verified bytes, each is tried in turn, and the bytes
are hash-checked on the way (a corrupt or unreachable copy is skipped, and named if none is left).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stratus.errors import ConfigError, StorageError
from stratus.state import Repository
from stratus.storage import SiteStore
from stratus.storage.artifacts import unpack

__all__ = ["Found", "Retrieved", "fetch_artifact", "find_artifact"]

_HEX = re.compile(r"^[0-9a-f]{8,64}$")


@dataclass(frozen=True)
class Found:
    """An artifact picked by the user: its hash, what it is called, and whether it is a packed folder."""

    sha256: str
    label: str  # "square.squares in run 20261126-…" or the hash
    size_bytes: int
    is_dir: bool


@dataclass(frozen=True)
class Retrieved:
    """Where the bytes came from, and the copies that were skipped on the way (site → why)."""

    site: str
    skipped: Mapping[str, str]


def find_artifact(repo: Repository, ident: str, run: str | None = None) -> Found:
    """``ident`` as a SHA-256 (or a unique prefix of 8+ hex digits) or a reference (``train.model``,
    ``dataset:raw``) in ``run``, by default in the latest run that named it."""
    sha, label = _resolve(repo, ident.strip(), run)
    row = repo.artifact(sha)
    if row is None:
        raise ConfigError(f"no artifact {ident!r} in the state database", field="ARTIFACT")
    return Found(sha, label, row.size_bytes, row.is_dir)


def _resolve(repo: Repository, ident: str, run: str | None) -> tuple[str, str]:
    if _HEX.match(ident):
        matches = sorted(row.sha256 for row, _ in repo.artifacts() if row.sha256.startswith(ident))
        if len(matches) == 1:
            return matches[0], matches[0]
        if len(matches) > 1:
            raise ConfigError(
                f"{ident!r} is the start of {len(matches)} artifacts' hashes; give more digits",
                field="ARTIFACT",
            )
    runs = [run] if run is not None else [r.id for r in repo.runs()]
    for run_id in runs:
        sha = repo.resolve(run_id, ident)
        if sha is not None:
            return sha, f"{ident} in run {run_id}"
    where = f"run {run}" if run is not None else "any run"
    known = sorted({ref for r in runs[:1] for ref in repo.names(r)})
    hint = f"; names in run {runs[0]}: {', '.join(known)}" if known else ""
    raise ConfigError(
        f"no artifact named {ident!r} in {where}, and it is not a known SHA-256{hint}", field="ARTIFACT"
    )


def fetch_artifact(
    repo: Repository,
    stores: Mapping[str, SiteStore],
    found: Found,
    dest: Path,
    *,
    site: str | None = None,
) -> Retrieved:
    """Write the artifact to ``dest`` (a folder artifact is unpacked into it) from ``site``, or from the
    first verified holder whose bytes hash right. Raises StorageError naming every site tried."""
    replicas = repo.replicas(found.sha256)
    if site is not None:
        if site not in stores:
            known = ", ".join(stores)
            raise ConfigError(f"unknown site {site!r}; the platform's sites are: {known}", field="--site")
        sites = [site]
    else:
        sites = sorted(s for s, status in replicas.items() if status == "verified" and s in stores)
        if not sites:
            recorded = ", ".join(f"{s} ({st})" for s, st in sorted(replicas.items())) or "none"
            raise StorageError(
                f"no site holds verified bytes of {found.label} (replicas: {recorded}); "
                "run stratus storage verify, or name a site with --site"
            )
    skipped: dict[str, str] = {}
    for name in sites:
        try:
            _fetch(stores[name], found, dest)
        except StorageError as exc:
            skipped[name] = exc.detail
            continue
        return Retrieved(name, skipped)
    tried = "; ".join(f"{s}: {why}" for s, why in skipped.items())
    raise StorageError(f"could not fetch {found.label} from any site ({tried})")


def _fetch(store: SiteStore, found: Found, dest: Path) -> None:
    if not found.is_dir:
        store.fetch(found.sha256, dest)  # streamed to a temporary file and hash-checked, then renamed
        return
    packed = dest.with_name(f".{dest.name}.{found.sha256[:12]}.tar")
    try:
        store.fetch(found.sha256, packed)
        unpack(packed, dest)
    finally:
        packed.unlink(missing_ok=True)
