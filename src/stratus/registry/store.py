"""The model registry: register exported ONNX models with their lineage, list, show, promote, download.

Backed by MLflow through its client API only (never the fluent ``mlflow.*`` functions and their global
tracking URI), so two registries in one process, or one shared by threads, cannot leak into each other.
The default store is embedded: ``mlflow.db`` (SQLite) and ``mlartifacts/`` in the platform's state folder.
A platform's ``registry: {tracking_uri: ...}`` points at a team's MLflow server instead.

The registry's artifact store is a place where model bytes are stored, so it has a jurisdiction too
(``registry: {jurisdiction: EU}``); none is declared by default, the embedded store's included (Stratus
cannot know where the machine running it is). A model whose lineage carries a residency is registered
only into a registry declared in that jurisdiction; a model with none (declassified, federated) anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from stratus.errors import RegistryError, ResidencyError
from stratus.redact import register_url
from stratus.registry import backend
from stratus.registry.info import (
    ONNX_FILE_TAG,
    ONNX_SHA256_TAG,
    ONNX_SITES_TAG,
    PROMOTION_TAG_PREFIX,
    ModelDetails,
    ModelVersionInfo,
    Promotion,
    RegisteredModelInfo,
)
from stratus.registry.lineage import Lineage
from stratus.registry.refs import (
    ModelRef,
    artifacts_dir,
    check_alias,
    check_tracking_uri,
    display_uri,
    embedded_uri,
)
from stratus.storage import allows, hash_file

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

__all__ = ["Registry", "fetch_model", "local_name"]

DEFAULT_EXPERIMENT = "stratus"
_MODEL_ARTIFACT_PATH = "model"
_LISTED = 20  # names shown in an "unknown model" message
_PAGE = 1000


class Registry:
    """One MLflow tracking store seen as Stratus's model registry; open it with :meth:`open`.

    Thread-safe: the MLflow client is created once, on first use, and MLflow's client is itself
    stateless between calls.
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        embedded_db: Path | None,
        artifact_root: Path | None,
        jurisdiction: str | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.jurisdiction = jurisdiction.upper() if jurisdiction else None
        self._embedded_db = embedded_db
        self._artifact_root = artifact_root
        self._client: MlflowClient | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, tracking_uri: str | None, state_dir: Path, jurisdiction: str | None = None) -> Registry:
        """The registry at ``tracking_uri``, else the embedded one in ``state_dir``; nothing is created yet.

        Database-backed stores (the embedded one, or a ``sqlite:``/``postgresql:`` URI) keep model files
        in ``state_dir/mlartifacts``, not in MLflow's default ``./mlruns`` of whatever the working
        directory is; a server decides for itself (``mlflow server --artifacts-destination``).
        ``jurisdiction`` is where its model files are stored, as the platform's ``registry`` declares.
        """
        if tracking_uri is None:
            return cls(
                embedded_uri(state_dir),
                embedded_db=state_dir / "mlflow.db",
                artifact_root=artifacts_dir(state_dir),
                jurisdiction=jurisdiction,
            )
        register_url(tracking_uri)
        check_tracking_uri(tracking_uri)
        is_server = tracking_uri.split(":", 1)[0] in ("http", "https")
        return cls(
            tracking_uri,
            embedded_db=None,
            artifact_root=None if is_server else artifacts_dir(state_dir),
            jurisdiction=jurisdiction,
        )

    @property
    def shown_uri(self) -> str:
        """The tracking URI as it may be printed (no password)."""
        return display_uri(self.tracking_uri)

    # -- writing -----------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        onnx_path: Path,
        lineage: Lineage,
        aliases: Iterable[str] = (),
        *,
        description: str | None = None,
        holders: Iterable[str] = (),
    ) -> ModelVersionInfo:
        """Log ``onnx_path`` in an MLflow run carrying ``lineage``, register it as ``name``'s next version.

        The run goes to the experiment named after the pipeline (else ``stratus``); the version gets the
        lineage tags and the file's SHA-256, which :meth:`download` checks; each alias then points at it.
        ``holders`` are the sites whose content-addressed stores hold these very bytes: recorded on the
        version, they are where the bytes are found again when the registry's own file is lost.
        A model bound to a residency the registry's jurisdiction does not satisfy is refused before any
        byte is written (:class:`ResidencyError`).
        """
        ModelRef(name)
        wanted = [check_alias(a) for a in aliases]
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file() or onnx_path.suffix != ".onnx":
            raise RegistryError(f"{onnx_path}: no such .onnx file to register as {name!r}", model=name)
        self.check_residency(name, frozenset(lineage.residency))
        digest = hash_file(onnx_path)
        sites = {ONNX_SITES_TAG: ",".join(dict.fromkeys(holders))} if holders else {}
        client = self._connect(create=True)
        with backend.mlflow_errors(f"register {name!r}", self.tracking_uri, name):
            run = client.create_run(
                self._experiment_id(client, lineage.pipeline or DEFAULT_EXPERIMENT),
                run_name=f"{lineage.step}-{lineage.run_id}",
                tags=lineage.to_tags(),
            )
            run_id = run.info.run_id
            try:
                backend.log_batch(client, run_id, lineage.to_metrics(), lineage.to_params())
                client.log_artifact(run_id, str(onnx_path), _MODEL_ARTIFACT_PATH)
            except BaseException:
                _end_run(client, run_id, "FAILED")
                raise
            client.set_terminated(run_id, "FINISHED")
            self._ensure_model(client, name)
            version = client.create_model_version(
                name,
                source=f"{run.info.artifact_uri.rstrip('/')}/{_MODEL_ARTIFACT_PATH}",
                run_id=run_id,
                tags={**lineage.to_tags(), ONNX_SHA256_TAG: digest, ONNX_FILE_TAG: onnx_path.name, **sites},
                description=description,
            )
            for alias in wanted:
                client.set_registered_model_alias(name, alias, str(version.version))
        return self.version(ModelRef(name, version=int(version.version)))

    def promote(
        self,
        name: str,
        version: int,
        alias: str,
        *,
        by: str | None = None,
        source: str | None = None,
        sites: Iterable[str] = (),
    ) -> Promotion:
        """Point ``alias`` (e.g. ``champion``) at ``version``; the answer says where it pointed before.

        With ``by`` (who; the CLI passes ``$STRATUS_ACTOR`` or the OS user) the promotion is recorded on
        the version as ``stratus.promotion.<alias>``: who, when (UTC), what was promoted (``source``)
        and the sites its bytes were copied to, so `models show` answers "who put this in production".
        """
        check_alias(alias)
        model = self._model(name)
        self._version_entity(name, version)
        client = self._connect()
        promotion = Promotion(
            name,
            alias,
            version,
            model.aliases.get(alias),
            by,
            datetime.now(UTC) if by is not None else None,
            source,
            tuple(dict.fromkeys(sites)),
        )
        with backend.mlflow_errors(f"set alias {alias!r} of {name!r}", self.tracking_uri, name):
            if by is not None:
                tag = json.dumps(promotion.record(), sort_keys=True)
                client.set_model_version_tag(name, str(version), PROMOTION_TAG_PREFIX + alias, tag)
            client.set_registered_model_alias(name, alias, str(version))
        return promotion

    # -- reading -----------------------------------------------------------------------------------

    def list_models(self) -> list[RegisteredModelInfo]:
        """Every registered model, by name; empty when the embedded store has never been written."""
        if not self._exists():
            return []
        client = self._connect()
        models: list[RegisteredModelInfo] = []
        token: str | None = None
        with backend.mlflow_errors("list models", self.tracking_uri):
            while True:
                page = client.search_registered_models(
                    max_results=_PAGE, order_by=["name ASC"], page_token=token
                )
                models.extend(RegisteredModelInfo.from_mlflow(m) for m in page)
                token = page.token
                if not token:
                    return models

    def show(self, name: str, *, version: int | None = None, alias: str | None = None) -> ModelDetails:
        """The model, its versions newest first, and the version asked for (else the newest)."""
        ref = ModelRef(name, version=version, alias=alias)
        model = self._model(name)
        versions = tuple(self._versions(model))
        selected = self._select(ref, model, versions) if ref.version or ref.alias else None
        return ModelDetails(model, versions, selected or (versions[0] if versions else None))

    def version(self, ref: ModelRef) -> ModelVersionInfo:
        """The version ``ref`` names (number, alias, or the newest when it names neither)."""
        model = self._model(ref.name)
        if ref.version is None and ref.alias is None:
            versions = self._versions(model)
            if not versions:
                raise RegistryError(f"model {ref.name!r} has no versions yet", model=ref.name)
            return versions[0]
        number = ref.version if ref.version is not None else self._alias_target(model, ref)
        return self._info(model, self._version_entity(ref.name, number))

    def download(self, name: str, alias_or_version: str | int | None, dest_dir: Path) -> Path:
        """The version's ONNX file as ``dest_dir/NAME-vVERSION.onnx``, its SHA-256 checked.

        Published atomically, and reused when already there with the right hash, so a model server
        restarting on the same folder does not download again.
        """
        return self.download_version(self.version(ModelRef.of(name, alias_or_version)), dest_dir)

    def download_version(self, info: ModelVersionInfo, dest_dir: Path) -> Path:
        """:meth:`download` for a version already looked up (``info``)."""
        target = self.cached(info, dest_dir)
        if target is not None:
            return target
        dest_dir = Path(dest_dir)
        target = local_name(info, dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        name = info.name
        client = self._connect()
        with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".download-") as tmp:
            with backend.mlflow_errors(f"download {info.uri}", self.tracking_uri, name):
                uri = client.get_model_version_download_uri(name, str(info.version))
                local = backend.download_artifacts(uri, Path(tmp), self.tracking_uri)
            found = [local] if local.is_file() else sorted(local.rglob("*.onnx"))
            if len(found) != 1:
                listed = ", ".join(p.name for p in found) or "none"
                raise RegistryError(
                    f"{info.uri} ({info.source}) should hold exactly one .onnx file, found: {listed}",
                    tracking_uri=self.shown_uri,
                    model=name,
                )
            if info.onnx_sha256 is not None and (actual := hash_file(found[0])) != info.onnx_sha256:
                raise RegistryError(
                    f"{info.uri}: the downloaded file's SHA-256 is {actual}, but {info.onnx_sha256} was "
                    "registered; the artifact store's copy is corrupt or was replaced",
                    tracking_uri=self.shown_uri,
                    model=name,
                )
            os.replace(found[0], target)
        return target

    @staticmethod
    def cached(info: ModelVersionInfo, dest_dir: Path) -> Path | None:
        """The version's file downloaded earlier into ``dest_dir``, if its bytes still hash right."""
        target = local_name(info, Path(dest_dir))
        if target.is_file() and info.onnx_sha256 is not None and hash_file(target) == info.onnx_sha256:
            return target
        return None

    def check_residency(self, name: str, residency: frozenset[str]) -> None:
        """Refuse (:class:`ResidencyError`) a model bound to ``residency`` this registry may not hold."""
        if allows(self.jurisdiction, residency):
            return
        bound = "/".join(sorted(residency))
        if self.jurisdiction:
            where = f"is in {self.jurisdiction}"
            fix = f"use a registry whose artifact store is in the {bound}"
        else:
            where = "has no declared jurisdiction (registry.jurisdiction is not set in the platform file)"
            fix = f"if that store is in the {bound}, declare it: registry: {{jurisdiction: {bound}}}"
        raise ResidencyError(
            f"refusing to register model {name!r}: it is {bound}-resident and the registry's artifact "
            f"store at {self.shown_uri} {where}; {fix}"
        )

    # -- internals ---------------------------------------------------------------------------------

    def _exists(self) -> bool:
        return self._embedded_db is None or self._embedded_db.is_file()

    def _connect(self, *, create: bool = False) -> MlflowClient:
        if not create and not self._exists():
            raise RegistryError(
                f"no models registered yet: the registry at {self.shown_uri} is empty "
                "(models are registered when a pipeline exports one)",
                tracking_uri=self.shown_uri,
            )
        with self._lock:
            if self._client is None:
                if self._embedded_db is not None:
                    self._embedded_db.parent.mkdir(parents=True, exist_ok=True)
                self._client = backend.connect(self.tracking_uri)
            return self._client

    def _experiment_id(self, client: MlflowClient, name: str) -> str:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = self._artifact_root.as_uri() if self._artifact_root is not None else None
            # Another process may create it between our two calls: then use theirs.
            created = backend.unless(
                "RESOURCE_ALREADY_EXISTS", lambda: client.create_experiment(name, artifact_location=location)
            )
            if created is not None:
                return created
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise RegistryError(
                    f"the MLflow experiment {name!r} vanished while being created; retry",
                    tracking_uri=self.shown_uri,
                )
        if experiment.lifecycle_stage == "deleted":
            raise RegistryError(
                f"the MLflow experiment {name!r} (id {experiment.experiment_id}) was deleted; restore it "
                f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or purge it",
                tracking_uri=self.shown_uri,
            )
        return str(experiment.experiment_id)

    def _ensure_model(self, client: MlflowClient, name: str) -> None:
        backend.unless("RESOURCE_ALREADY_EXISTS", lambda: client.create_registered_model(name))

    def _model(self, name: str) -> RegisteredModelInfo:
        ModelRef(name)
        client = self._connect()
        with backend.mlflow_errors(f"read model {name!r}", self.tracking_uri, name):
            entity = backend.unless("RESOURCE_DOES_NOT_EXIST", lambda: client.get_registered_model(name))
        if entity is None:
            names = [m.name for m in self.list_models()]
            more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
            raise RegistryError(
                f"no model named {name!r} in the registry at {self.shown_uri}; registered models: "
                f"{', '.join(names[:_LISTED]) + more if names else 'none yet'}",
                tracking_uri=self.shown_uri,
                model=name,
            )
        return RegisteredModelInfo.from_mlflow(entity)

    def _versions(self, model: RegisteredModelInfo) -> list[ModelVersionInfo]:
        client = self._connect()
        quote = "'" if "'" not in model.name else '"'
        found: list[ModelVersionInfo] = []
        token: str | None = None
        with backend.mlflow_errors(f"list versions of {model.name!r}", self.tracking_uri, model.name):
            while True:
                page = client.search_model_versions(
                    f"name = {quote}{model.name}{quote}", max_results=_PAGE, page_token=token
                )
                found.extend(self._info(model, mv) for mv in page)
                token = page.token
                if not token:
                    break
        return sorted(found, key=lambda v: v.version, reverse=True)

    def _version_entity(self, name: str, number: int) -> ModelVersion:
        client = self._connect()
        with backend.mlflow_errors(f"read version {number} of {name!r}", self.tracking_uri, name):
            entity = backend.unless(
                "RESOURCE_DOES_NOT_EXIST", lambda: client.get_model_version(name, str(number))
            )
        if entity is None:
            numbers = [str(v.version) for v in self._versions(self._model(name))]
            raise RegistryError(
                f"model {name!r} has no version {number}; its versions: {', '.join(numbers) or 'none yet'}",
                tracking_uri=self.shown_uri,
                model=name,
            )
        return entity

    def _info(self, model: RegisteredModelInfo, entity: ModelVersion) -> ModelVersionInfo:
        # Aliases come from the model: not every store fills them in on search results.
        info = ModelVersionInfo.from_mlflow(entity)
        aliases = tuple(sorted(a for a, v in model.aliases.items() if v == info.version))
        return replace(info, aliases=aliases)

    def _alias_target(self, model: RegisteredModelInfo, ref: ModelRef) -> int:
        assert ref.alias is not None
        if ref.alias not in model.aliases:
            known = ", ".join(f"{a} → v{v}" for a, v in model.aliases.items())
            hint = known or (
                f"none yet; set one with: stratus models promote {model.name} --version N --alias {ref.alias}"
            )
            raise RegistryError(
                f"model {model.name!r} has no alias {ref.alias!r}; its aliases: {hint}",
                tracking_uri=self.shown_uri,
                model=model.name,
            )
        return model.aliases[ref.alias]

    def _select(
        self, ref: ModelRef, model: RegisteredModelInfo, versions: tuple[ModelVersionInfo, ...]
    ) -> ModelVersionInfo:
        number = ref.version if ref.version is not None else self._alias_target(model, ref)
        for info in versions:
            if info.version == number:
                return info
        listed = ", ".join(str(v.version) for v in versions) or "none yet"
        raise RegistryError(
            f"model {model.name!r} has no version {number}; its versions: {listed}",
            tracking_uri=self.shown_uri,
            model=model.name,
        )


def local_name(info: ModelVersionInfo, dest_dir: Path) -> Path:
    """Where a version's file is kept once downloaded: ``dest_dir/NAME-vVERSION.onnx``."""
    return dest_dir / f"{info.name}-v{info.version}.onnx"


def fetch_model(uri: str, dest_dir: Path, *, tracking_uri: str | None, state_dir: Path) -> Path:
    """The local ONNX file for ``models:/NAME@ALIAS`` (or ``/VERSION``, or the newest), for the server.

    Example: ``fetch_model("models:/fraud@champion", cache, tracking_uri=None, state_dir=...)``.
    """
    ref = ModelRef.parse(uri)
    selector: str | int | None = ref.alias if ref.alias is not None else ref.version
    return Registry.open(tracking_uri, state_dir).download(ref.name, selector, dest_dir)


def _end_run(client: MlflowClient, run_id: str, status: str) -> None:
    # Best effort: the failure that got us here is the one worth reporting.
    with contextlib.suppress(Exception):
        client.set_terminated(run_id, status)
