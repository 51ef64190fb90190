"""Which model bytes a deployment serves, and getting a verified copy of them to every serving site.

``stratus serve`` takes an ONNX file, a registered model (``models:/NAME@ALIAS`` or ``/VERSION``, from
the platform's MLflow registry), or a run artifact. A run artifact is a reference the runner
bound (``export.onnx``, the latest successful run's; ``RUN_ID:export.onnx`` for a given run; or
``sha256:HEX``). Whatever the form, the model is known by its SHA-256 and carries a residency: the
registered version's (from its lineage) and the manifest's for the same bytes, the strictest of both, so
an EU-resident model is refused at a US site however it is named. Each serving site's server loads the
model from its own store: the bytes are copied there first (content-addressed and hash-checked), from the
local file or from any site that holds a verified copy; a site outside the bound is refused before
anything moves, naming the site and the bound. A registered model whose registry copy is lost (missing,
unreadable, or failing its hash) is read from any site store that holds its registered SHA-256.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stratus.errors import ConfigError, StorageError
from stratus.policy import NO_POLICY, PolicyGate
from stratus.registry import ModelRef, Registry, SiteOpener, download_model
from stratus.state import Repository
from stratus.storage import (
    SiteStore,
    allows,
    copy_object,
    format_residency,
    hash_file,
    parse_residency,
    strictest,
)
from stratus.storage.transfer import IntegrityError
from stratus.workspace import Workspace

__all__ = ["ModelSource", "RegistryAccess", "StoreOpener", "check_sites", "resolve_model", "stage_model"]

_SHA = re.compile(r"^[0-9a-f]{64}$")
_MODEL_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_SERVE_RUN = "serve"  # the manifest's run id for copies made by `stratus serve`, not by a run

#: Opens another site's store (a holder of the model that does not serve it); None when it is unknown.
StoreOpener = SiteOpener


@dataclass(frozen=True)
class ModelSource:
    """The model to serve, by hash: a local file (``local_path``), or an artifact held at some sites."""

    name: str
    description: str
    sha256: str
    local_path: Path | None = None
    residency: frozenset[str] = frozenset()
    version: str | None = None  # a registered model's version number (what its answers name)


def _model_name(text: str) -> str:
    """A name that is one URL path segment, as the V2 protocol puts it in ``/v2/models/{name}``."""
    return _MODEL_NAME.sub("-", text).strip("-.") or "model"


@dataclass(frozen=True)
class RegistryAccess:
    """Where ``models:/NAME@ALIAS`` references are looked up, and where downloaded models are kept.

    ``open_store`` opens any site's store: where a registered model's bytes are read from when the
    registry's own copy is lost (None: the registry's copy only).
    """

    tracking_uri: str | None
    state_dir: Path
    cache: Path
    open_store: StoreOpener | None = None

    @classmethod
    def of(cls, workspace: Workspace, tracking_uri: str | None = None) -> RegistryAccess:
        """The workspace's registry (``tracking_uri``, else its platform's, else the embedded one), its
        download cache, and every site of its platform as a holder to read a lost copy back from."""
        uri = tracking_uri if tracking_uri is not None else workspace.tracking_uri
        return cls(uri, workspace.state_dir, workspace.registry_cache_dir, workspace.store)


def resolve_model(
    spec: str, repo: Repository | None, name: str | None = None, registry: RegistryAccess | None = None
) -> ModelSource:
    """Turn the MODEL argument into a source; a wrong reference names what exists instead."""
    if spec.startswith("models:/") and registry is not None:
        return _from_registry(spec, repo, name, registry)
    path = Path(spec)
    if path.suffix == ".onnx" and path.is_file():
        sha = hash_file(path)
        return ModelSource(
            name or _model_name(path.stem), str(path), sha, local_path=path, residency=_bound(repo, sha)
        )
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
        bound = repo.resolve(run.id, ref)
        if bound is not None:
            source = _by_hash(bound, repo, name or run.pipeline)
            return ModelSource(source.name, f"{ref} of run {run.id}", bound, residency=source.residency)
    known_refs = sorted({r for run in runs for r in repo.names(run.id) if not r.startswith("dataset:")})
    raise ConfigError(
        f"{spec!r} is neither an .onnx file nor an artifact of a successful run; "
        f"artifacts you can serve: {', '.join(known_refs) or 'none (run a pipeline first)'}",
        field="MODEL",
    )


def _from_registry(
    spec: str, repo: Repository | None, name: str | None, access: RegistryAccess
) -> ModelSource:
    """The registered version, downloaded and hash-checked; bound by its lineage and the manifest.

    The bytes come from the registry, else (its copy lost) from any site the manifest or the version
    records as a holder; the description says which, so the deployment's output does too.
    """
    ref = ModelRef.parse(spec)
    registry = Registry.open(access.tracking_uri, access.state_dir)
    info = registry.version(ref)
    holders = _verified_holders(repo, info.onnx_sha256)
    got = download_model(registry, info, access.cache, holders=holders, open_store=access.open_store)
    sha = info.onnx_sha256 or hash_file(got.path)
    recorded = frozenset(info.lineage.residency) if info.lineage is not None else frozenset()
    return ModelSource(
        name or _model_name(ref.name),
        f"{spec} (version {info.version}; bytes from {got.origin})",
        sha,
        local_path=got.path,
        residency=strictest(recorded, _bound(repo, sha)),
        version=str(info.version),
    )


def _verified_holders(repo: Repository | None, sha: str | None) -> list[str]:
    """Sites the manifest says hold verified bytes of ``sha``, by name (so the order is stable)."""
    if repo is None or sha is None:
        return []
    return sorted(site for site, status in repo.replicas(sha).items() if status == "verified")


def _bound(repo: Repository | None, sha: str) -> frozenset[str]:
    """The manifest's residency for these bytes, whatever name they arrived under."""
    row = repo.artifact(sha) if repo is not None else None
    return parse_residency(row.residency) if row is not None else frozenset()


def _by_hash(sha: str, repo: Repository, name: str | None) -> ModelSource:
    if not _SHA.match(sha):
        raise ConfigError(f"{sha!r} is not a SHA-256 (64 lowercase hex digits)", field="MODEL")
    row = repo.artifact(sha)
    if row is None:
        raise ConfigError(f"no artifact sha256:{sha} in the manifest", field="MODEL")
    if row.is_dir:
        raise ConfigError(f"artifact {row.producer} is a folder, not an ONNX file", field="MODEL")
    residency = parse_residency(row.residency)
    return ModelSource(name or _model_name(row.producer), f"sha256:{sha}", sha, residency=residency)


def check_sites(source: ModelSource, stores: dict[str, SiteStore], policy: PolicyGate = NO_POLICY) -> None:
    """Refuse, before any byte moves, a site outside the model's residency bound, or one a policy denies
    (PolicyError, with the policy's messages)."""
    for site, store in stores.items():
        if not allows(store.jurisdiction, source.residency):
            bound = "/".join(sorted(source.residency))
            raise ConfigError(
                f"the model ({source.description}) is {bound}-resident and site {site} is in "
                f"{store.jurisdiction or 'no declared jurisdiction'}: serve it from {bound} sites only",
                field="--sites",
            )
    policy.check_serve(source.name, source.description, source.sha256, source.residency, list(stores))


def stage_model(
    source: ModelSource,
    stores: dict[str, SiteStore],
    repo: Repository | None,
    cache: Path,
    open_holder: StoreOpener | None = None,
) -> dict[str, Path]:
    """A local ONNX path per site in ``stores``, read from that site's own store (copied there first).

    Every site is checked against the model's residency before any byte moves, so a refused deployment
    leaves nothing behind. A site that lacks the model gets it from the local file, else from any site
    that holds a verified copy (``open_holder`` opens one that does not serve); each copy is hash-checked
    and recorded in the manifest.
    """
    check_sites(source, stores)
    paths: dict[str, Path] = {}
    for site, store in stores.items():
        if source.local_path is not None:
            _publish(source, source.local_path, store, repo)
        else:
            assert repo is not None, "a run artifact is served only with the run state"
            _ensure_held(source.sha256, site, stores, repo, source.residency, open_holder)
        dest = cache / site / f"{source.sha256}.onnx"
        if dest.is_file() and hash_file(dest) == source.sha256:
            paths[site] = dest  # fetched before, and still the bytes its name promises
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            store.fetch(source.sha256, dest)
        except StorageError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            # The site's replica is corrupt: write a good one over it, then read it again.
            if repo is not None:
                repo.set_replica(source.sha256, site, "corrupt")
            if source.local_path is not None:
                _publish(source, source.local_path, store, repo)
            else:
                assert repo is not None
                _ensure_held(source.sha256, site, stores, repo, source.residency, open_holder)
            store.fetch(source.sha256, dest)
        paths[site] = dest
    return paths


def _publish(source: ModelSource, local: Path, store: SiteStore, repo: Repository | None) -> None:
    """Put the local model into ``store`` under its hash (residency checked again by the store)."""
    info = store.publish(local, source.residency)
    if info.sha256 != source.sha256:
        raise StorageError(
            f"{local} changed after it was chosen (sha256 {info.sha256}, expected {source.sha256}); "
            "serve it again",
            site=store.site,
        )
    if repo is not None:
        repo.add_artifact(
            info.sha256,
            size_bytes=info.size_bytes,
            is_dir=False,
            producer=source.description[:160],
            run_id=_SERVE_RUN,
            residency=format_residency(source.residency),
        )
        repo.set_replica(info.sha256, store.site, "verified")


def _ensure_held(
    sha: str,
    site: str,
    stores: dict[str, SiteStore],
    repo: Repository,
    residency: frozenset[str],
    open_holder: StoreOpener | None,
) -> None:
    replicas = repo.replicas(sha)
    if replicas.get(site) == "verified" and stores[site].has(sha):
        return  # the fetch re-hashes what it reads
    if stores[site].holds(sha):
        repo.set_replica(sha, site, "verified")  # unrecorded or last seen bad: vouched for by a re-read
        return
    holders = [s for s, status in replicas.items() if status == "verified" and s != site]
    failure: StorageError | None = None
    for holder in holders:
        source = stores.get(holder) or (open_holder(holder) if open_holder is not None else None)
        if source is None:  # a site no longer in the platform file
            continue
        try:
            if not source.has(sha):
                continue
            moved = copy_object(sha, source, stores[site], residency)
        except StorageError as exc:
            if exc.site == site:
                raise  # the destination (or its residency) is the problem: another holder will not help
            failure = exc
            continue
        repo.set_replica(sha, site, "verified")
        if moved:
            row = repo.artifact(sha)
            repo.add_transfer(
                sha,
                artifact=row.producer if row is not None else sha,
                from_site=holder,
                to_site=site,
                size_bytes=moved,
                reason="serving copy",
                run_id=None,
                step=None,
            )
        return
    tried = f" (tried {', '.join(holders)}: {failure})" if failure is not None else ""
    raise StorageError(
        f"no site holds a verified copy of sha256:{sha} to copy to {site}{tried}; "
        "run `stratus storage repair`",
        site=site,
    )
