"""What the registry answers with: frozen values built from MLflow's entities, with ``to_json`` for --json.

MLflow's entities differ by store (a SQL store gives versions as ints, the REST client as strings, and
empty strings where SQL gives None); these values are normalised once, here, so nothing else cares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stratus.registry.lineage import TAG_PREFIX, Lineage

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

__all__ = [
    "ONNX_FILE_TAG",
    "ONNX_SHA256_TAG",
    "ONNX_SITES_TAG",
    "PROMOTION_TAG_PREFIX",
    "ModelDetails",
    "ModelVersionInfo",
    "Promotion",
    "RegisteredModelInfo",
]

ONNX_SHA256_TAG = "stratus.onnx_sha256"
ONNX_FILE_TAG = "stratus.onnx_file"
#: Sites whose content-addressed stores held the version's bytes when it was registered (comma-separated).
ONNX_SITES_TAG = "stratus.onnx_sites"
#: ``stratus.promotion.<alias>`` on a version: JSON of who pointed the alias at it, when, from where.
PROMOTION_TAG_PREFIX = "stratus.promotion."


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version: where its files are, which aliases point at it, and its lineage.

    ``lineage`` is None for a version registered outside Stratus; ``tags`` are the tags that are not
    Stratus's own. ``onnx_sites`` are the sites whose stores held the bytes (under ``onnx_sha256``) when
    the version was registered: where to look when the registry's own file is lost.
    """

    name: str
    version: int
    aliases: tuple[str, ...]
    created_at: datetime
    source: str
    run_id: str | None
    status: str
    description: str
    lineage: Lineage | None
    onnx_sha256: str | None
    onnx_file: str | None
    tags: dict[str, str] = field(default_factory=dict)
    onnx_sites: tuple[str, ...] = ()
    #: alias → {"by", "at", "from", "sites"}: the last promotion to each alias that chose this version
    promotions: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """The version's ``models:/`` URI, as MLflow and the model server accept it."""
        return f"models:/{self.name}/{self.version}"

    @classmethod
    def from_mlflow(cls, mv: ModelVersion) -> ModelVersionInfo:
        """Normalise an MLflow ModelVersion from any store."""
        tags = {str(k): str(v) for k, v in (mv.tags or {}).items()}
        return cls(
            name=str(mv.name),
            version=int(mv.version),
            aliases=tuple(sorted(str(a) for a in (mv.aliases or ()))),
            created_at=_time(mv.creation_timestamp),
            source=str(mv.source or ""),
            run_id=str(mv.run_id) if mv.run_id else None,
            status=str(mv.status or ""),
            description=str(mv.description or ""),
            lineage=Lineage.from_tags(tags),
            onnx_sha256=tags.get(ONNX_SHA256_TAG),
            onnx_file=tags.get(ONNX_FILE_TAG),
            tags={k: v for k, v in sorted(tags.items()) if not k.startswith(TAG_PREFIX)},
            onnx_sites=tuple(s for s in tags.get(ONNX_SITES_TAG, "").split(",") if s),
            promotions=_promotions(tags),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON; times in ISO 8601 UTC."""
        return {
            "name": self.name,
            "version": self.version,
            "uri": self.uri,
            "aliases": list(self.aliases),
            "created_at": self.created_at.isoformat(),
            "status": self.status,
            "source": self.source,
            "run_id": self.run_id,
            "description": self.description,
            "onnx_file": self.onnx_file,
            "onnx_sha256": self.onnx_sha256,
            "onnx_sites": list(self.onnx_sites),
            "promotions": self.promotions,
            "lineage": self.lineage.to_json() if self.lineage is not None else None,
            "tags": self.tags,
        }


@dataclass(frozen=True)
class RegisteredModelInfo:
    """A registered model's summary: its aliases (alias → version) and newest version number."""

    name: str
    description: str
    aliases: dict[str, int]
    latest_version: int | None
    created_at: datetime
    updated_at: datetime
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_mlflow(cls, rm: RegisteredModel) -> RegisteredModelInfo:
        """Normalise an MLflow RegisteredModel from any store."""
        raw_aliases: dict[Any, Any] = dict(rm.aliases or {})
        latest = [int(v.version) for v in (rm.latest_versions or ())]
        return cls(
            name=str(rm.name),
            description=str(rm.description or ""),
            aliases={str(a): int(v) for a, v in sorted(raw_aliases.items())},
            latest_version=max(latest) if latest else None,
            created_at=_time(rm.creation_timestamp),
            updated_at=_time(rm.last_updated_timestamp),
            tags={str(k): str(v) for k, v in sorted((rm.tags or {}).items())},
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON; times in ISO 8601 UTC."""
        return {
            "name": self.name,
            "description": self.description,
            "aliases": self.aliases,
            "latest_version": self.latest_version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "tags": self.tags,
        }


@dataclass(frozen=True)
class ModelDetails:
    """``show``'s answer: the model, all its versions newest first, and the one asked about.

    ``selected`` is the version named by number or alias, else the newest; None only for a model with
    no versions yet.
    """

    model: RegisteredModelInfo
    versions: tuple[ModelVersionInfo, ...]
    selected: ModelVersionInfo | None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for ``stratus models show --json``."""
        return {
            "model": self.model.to_json(),
            "selected": self.selected.to_json() if self.selected is not None else None,
            "versions": [v.to_json() for v in self.versions],
        }


@dataclass(frozen=True)
class Promotion:
    """An alias moved to a version; ``previous_version`` is where it pointed before (None: new alias).

    ``by`` and ``at`` say who moved it and when (recorded on the version, :data:`PROMOTION_TAG_PREFIX`);
    ``source`` is what was promoted (``staging``: an alias, or ``v3``), ``sites`` where its bytes were
    copied for it.
    """

    name: str
    alias: str
    version: int
    previous_version: int | None
    by: str | None = None
    at: datetime | None = None
    source: str | None = None
    sites: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        """What the version's promotion tag holds."""
        return {
            "by": self.by,
            "at": self.at.isoformat() if self.at else None,
            "from": self.source,
            "sites": list(self.sites),
        }

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for ``stratus models promote --json``."""
        return {
            "name": self.name,
            "alias": self.alias,
            "version": self.version,
            "previous_version": self.previous_version,
            "uri": f"models:/{self.name}@{self.alias}",
            "promoted_by": self.by,
            "promoted_at": self.at.isoformat() if self.at else None,
            "from": self.source,
            "sites": list(self.sites),
        }


def _promotions(tags: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The promotion records among a version's tags, by alias (a garbled one is shown as its text)."""
    found: dict[str, dict[str, Any]] = {}
    for key, value in sorted(tags.items()):
        if key.startswith(PROMOTION_TAG_PREFIX):
            try:
                record = json.loads(value)
            except ValueError:
                record = None
            found[key[len(PROMOTION_TAG_PREFIX) :]] = record if isinstance(record, dict) else {"raw": value}
    return found


def _time(millis: int | str | None) -> datetime:
    return datetime.fromtimestamp(int(millis or 0) / 1000, tz=UTC)
