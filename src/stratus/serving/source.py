"""Which model bytes a deployment serves, and getting a verified copy of them to every serving site.

``stratus serve`` takes an ONNX file, a registered model (``models:/NAME@ALIAS`` or ``/VERSION``, from
the platform's MLflow registry), or a run artifact. A run artifact is a reference the runner
bound (``export.onnx``, the latest successful run's; ``RUN_ID:export.onnx`` for a given run; or
``sha256:HEX``). Artifacts keep their residency: an EU-resident model is copied only to EU sites, and a
site outside the bound is refused before anything starts, naming the site and the bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stratus.errors import ConfigError, StorageError
from stratus.registry import ModelRef, fetch_model
from stratus.state import Repository
from stratus.storage import SiteStore, copy_object, hash_file
from stratus.storage.transfer import IntegrityError

__all__ = ["ModelSource", "RegistryAccess", "check_sites", "resolve_model", "stage_model"]

_SHA = re.compile(r"^[0-9a-f]{64}$")
_MODEL_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class ModelSource:
    """The model to serve: a local file, or an artifact held (and verified) at some sites."""

    name: str
    description: str
    local_path: Path | None = None
    sha256: str | None = None
    residency: frozenset[str] = frozenset()


def _model_name(text: str) -> str:
    """A name that is one URL path segment, as the V2 protocol puts it in ``/v2/models/{name}``."""
    return _MODEL_NAME.sub("-", text).strip("-.") or "model"


@dataclass(frozen=True)
class RegistryAccess:
    """Where ``models:/NAME@ALIAS`` references are looked up, and where downloaded models are kept."""

    tracking_uri: str | None
    state_dir: Path
    cache: Path


def resolve_model(
    spec: str, repo: Repository | None, name: str | None = None, registry: RegistryAccess | None = None
) -> ModelSource:
    """Turn the MODEL argument into a source; a wrong reference names what exists instead."""
    if spec.startswith("models:/") and registry is not None:
        path = fetch_model(
            spec, registry.cache, tracking_uri=registry.tracking_uri, state_dir=registry.state_dir
        )
        return ModelSource(name or _model_name(ModelRef.parse(spec).name), spec, local_path=path)
    path = Path(spec)
    if path.suffix == ".onnx" and path.is_file():
        return ModelSource(name or _model_name(path.stem), str(path), local_path=path)
    if path.suffix == ".onnx" and ("/" in spec or repo is None):
        raise ConfigError(f"model file {spec} not found", field="MODEL")
    if repo is None:
        raise ConfigError(f"{spec!r} is not an ONNX file and no run state was found", field="MODEL")
    run_id, sep, ref = spec.partition(":")
    if not sep:
        run_id, ref = "", spec
    if run_id == "sha256":
        return _by_hash(ref, repo, name)
    runs = [r for r in repo.runs() if r.status == "succeeded" and (not run_id or r.id == run_id)]
    if run_id and not runs:
        known = ", ".join(r.id for r in repo.runs()[-5:]) or "none"
        raise ConfigError(f"no successful run {run_id!r}; recent runs: {known}", field="MODEL")
    for run in sorted(runs, key=lambda r: r.created_at, reverse=True):
        sha = repo.resolve(run.id, ref)
        if sha is not None:
            source = _by_hash(sha, repo, name or run.pipeline)
            return ModelSource(source.name, f"{ref} of run {run.id}", sha256=sha, residency=source.residency)
    known_refs = sorted({r for run in runs for r in repo.names(run.id) if not r.startswith("dataset:")})
    raise ConfigError(
        f"{spec!r} is neither an .onnx file nor an artifact of a successful run; "
        f"artifacts you can serve: {', '.join(known_refs) or 'none (run a pipeline first)'}",
        field="MODEL",
    )


def _by_hash(sha: str, repo: Repository, name: str | None) -> ModelSource:
    if not _SHA.match(sha):
        raise ConfigError(f"{sha!r} is not a SHA-256 (64 lowercase hex digits)", field="MODEL")
    row = repo.artifact(sha)
    if row is None:
        raise ConfigError(f"no artifact sha256:{sha} in the manifest", field="MODEL")
    if row.is_dir:
        raise ConfigError(f"artifact {row.producer} is a folder, not an ONNX file", field="MODEL")
    residency = frozenset(row.residency.split(",")) if row.residency else frozenset()
    return ModelSource(name or _model_name(row.producer), f"sha256:{sha}", sha256=sha, residency=residency)


def check_sites(source: ModelSource, stores: dict[str, SiteStore]) -> None:
    """Refuse, before any byte moves, a site outside the model's residency bound."""
    for site, store in stores.items():
        if source.residency and store.jurisdiction not in source.residency:
            bound = "/".join(sorted(source.residency))
            raise ConfigError(
                f"the model ({source.description}) is {bound}-resident and site {site} is in "
                f"{store.jurisdiction or 'no declared jurisdiction'}: serve it from {bound} sites only",
                field="--sites",
            )


def stage_model(
    source: ModelSource, stores: dict[str, SiteStore], repo: Repository | None, cache: Path
) -> dict[str, Path]:
    """A local ONNX path per site in ``stores``, read from that site's own store (copied there first).

    Every site is checked against the model's residency before any byte moves, so a refused deployment
    leaves nothing behind.
    """
    if source.local_path is not None:
        return dict.fromkeys(stores, source.local_path.resolve())
    assert source.sha256 is not None
    assert repo is not None
    check_sites(source, stores)
    paths: dict[str, Path] = {}
    for site in stores:
        dest = cache / site / f"{source.sha256}.onnx"
        if dest.is_file() and hash_file(dest) == source.sha256:
            paths[site] = dest  # fetched before, and still the bytes its name promises
            continue
        _ensure_held(source.sha256, site, stores, repo, source.residency)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            stores[site].fetch(source.sha256, dest)
        except StorageError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            repo.set_replica(source.sha256, site, "corrupt")  # then copy a verified replica over it
            _ensure_held(source.sha256, site, stores, repo, source.residency)
            stores[site].fetch(source.sha256, dest)
        paths[site] = dest
    return paths


def _ensure_held(
    sha: str, site: str, stores: dict[str, SiteStore], repo: Repository, residency: frozenset[str]
) -> None:
    replicas = repo.replicas(sha)
    if replicas.get(site) == "verified" and stores[site].has(sha):
        return  # the fetch re-hashes what it reads
    if stores[site].holds(sha):
        repo.set_replica(sha, site, "verified")  # unrecorded or last seen bad: vouched for by a re-read
        return
    holders = [s for s, status in replicas.items() if status == "verified" and s in stores and s != site]
    for holder in holders:
        if stores[holder].has(sha):
            copy_object(sha, stores[holder], stores[site], residency)
            repo.set_replica(sha, site, "verified")
            return
    raise StorageError(
        f"no site holds a verified copy of sha256:{sha} to copy to {site}; run `stratus storage repair`",
        site=site,
    )
