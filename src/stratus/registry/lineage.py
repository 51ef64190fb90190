"""Where a registered model came from, and how that is written into MLflow's tags, params and metrics.

Tags are the source of truth: they are copied onto both the MLflow run and the model version, exactly
(JSON for lists and maps, the cost as a decimal string), so ``show`` can rebuild the lineage from the
version alone. Params and metrics repeat the same facts in MLflow's own columns so its UI can sort and
compare runs; their keys are sanitised and metrics are floats, so they are never read back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from stratus.errors import RegistryError

__all__ = ["TAG_PREFIX", "Lineage"]

TAG_PREFIX = "stratus."
_RUN_ID = "stratus.run_id"
_STEP = "stratus.step"
_PIPELINE = "stratus.pipeline"
_SITES = "stratus.sites"
_INPUTS = "stratus.inputs"
_METRICS = "stratus.metrics"
_COST = "stratus.cost_usd"
_RESIDENCY = "stratus.residency"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# MLflow accepts these in param and metric keys on every OS (colons only off Windows).
_UNSAFE_KEY_CHARS = re.compile(r"[^\w./\- ]")
_MAX_TAG_VALUE = 8000  # MLflow's limit on a tag value


@dataclass(frozen=True)
class Lineage:
    """The facts that make a model version reproducible and accountable.

    ``inputs`` maps each input artifact's name to its SHA-256, so the exact bytes a model was trained
    on can be found in the sites' content-addressed stores; ``cost_usd`` is what the run had cost when
    the model was exported (exact: money is never a float here). ``residency`` is the registered
    artifact's bound (the jurisdictions its bytes may never leave; empty: none), so every later copy of
    the model, out of the registry and into a serving site, can be checked without the run's manifest.
    """

    run_id: str
    step: str
    sites: tuple[str, ...]
    inputs: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    cost_usd: Decimal = Decimal(0)
    pipeline: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    residency: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Callers pass lists, floats and live dicts; keep private copies so the value cannot change.
        object.__setattr__(self, "sites", tuple(self.sites))
        if any(not isinstance(j, str) or not j.strip() for j in self.residency):
            raise ValueError(f"residency must list jurisdictions such as EU, got {list(self.residency)!r}")
        object.__setattr__(self, "residency", tuple(sorted({j.strip().upper() for j in self.residency})))
        object.__setattr__(self, "inputs", dict(self.inputs))
        object.__setattr__(self, "metrics", {k: float(v) for k, v in self.metrics.items()})
        object.__setattr__(self, "cost_usd", _decimal(self.cost_usd))
        object.__setattr__(self, "tags", dict(self.tags))
        for name, value in (("run_id", self.run_id), ("step", self.step)):
            if not value or not value.strip():
                raise ValueError(f"lineage {name} must not be empty")
        if not self.sites or any(not s for s in self.sites):
            raise ValueError(f"lineage sites must name at least one site, got {list(self.sites)!r}")
        for artifact, digest in self.inputs.items():
            if not _SHA256.match(digest):
                raise ValueError(f"input {artifact!r}: {digest!r} is not a SHA-256 (64 lowercase hex digits)")
        for metric, number in self.metrics.items():
            if not math.isfinite(number):
                raise ValueError(f"metric {metric!r} is {number}; MLflow stores only finite numbers")
        if not self.cost_usd.is_finite() or self.cost_usd < 0:
            raise ValueError(f"cost_usd must be a non-negative amount, got {self.cost_usd}")
        reserved = sorted(k for k in self.tags if k.startswith(TAG_PREFIX))
        if reserved:
            raise ValueError(f"tags {reserved} use the reserved prefix {TAG_PREFIX!r}; rename them")

    def to_tags(self) -> dict[str, str]:
        """MLflow tags for the run and the model version: everything, exactly, readable back."""
        tags = {
            _RUN_ID: self.run_id,
            _STEP: self.step,
            _SITES: json.dumps(list(self.sites)),
            _INPUTS: json.dumps(dict(sorted(self.inputs.items()))),
            _METRICS: json.dumps(dict(sorted(self.metrics.items()))),
            _COST: str(self.cost_usd),
            _RESIDENCY: json.dumps(list(self.residency)),
        }
        if self.pipeline is not None:
            tags[_PIPELINE] = self.pipeline
        for key, value in tags.items():
            if len(value) > _MAX_TAG_VALUE:
                raise RegistryError(
                    f"lineage tag {key} is {len(value)} characters, over MLflow's limit of "
                    f"{_MAX_TAG_VALUE}; record fewer inputs or metrics per model"
                )
        return {**self.tags, **tags}

    def to_params(self) -> dict[str, str]:
        """MLflow run params, so the UI can filter runs by step, site or input hash."""
        params = {"stratus_run_id": self.run_id, "step": self.step, "sites": ",".join(self.sites)}
        if self.pipeline is not None:
            params["pipeline"] = self.pipeline
        for artifact, digest in sorted(self.inputs.items()):
            params[f"input/{_key(artifact)}"] = digest
        return params

    def to_metrics(self) -> dict[str, float]:
        """MLflow run metrics: the model's metrics plus ``cost_usd``, as floats for MLflow's charts."""
        metrics = {_key(name): value for name, value in self.metrics.items()}
        metrics["cost_usd"] = float(self.cost_usd)
        return metrics

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Lineage | None:
        """The lineage written by :meth:`to_tags`; None for a version registered outside Stratus."""
        if _RUN_ID not in tags:
            return None
        try:
            return cls(
                run_id=tags[_RUN_ID],
                step=tags.get(_STEP, ""),
                sites=tuple(_json(tags, _SITES, list)),
                inputs=_json(tags, _INPUTS, dict),
                metrics=_json(tags, _METRICS, dict),
                cost_usd=Decimal(tags.get(_COST, "0")),
                pipeline=tags.get(_PIPELINE),
                tags={k: v for k, v in tags.items() if not k.startswith(TAG_PREFIX)},
                residency=tuple(_json(tags, _RESIDENCY, list)),
            )
        except (ValueError, TypeError, InvalidOperation) as exc:
            raise RegistryError(
                f"the version's stratus.* tags are malformed ({exc}); were they edited by hand?"
            ) from exc

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for ``--json``: the cost as an exact string, like the ledger's money."""
        return {
            "run_id": self.run_id,
            "step": self.step,
            "pipeline": self.pipeline,
            "sites": list(self.sites),
            "inputs": dict(sorted(self.inputs.items())),
            "metrics": dict(sorted(self.metrics.items())),
            "cost_usd": str(self.cost_usd),
            "tags": dict(sorted(self.tags.items())),
            "residency": list(self.residency),
        }


def _decimal(value: Decimal | float | int | str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        # repr() is the shortest round-trip form: 0.1 becomes Decimal("0.1"), not its binary expansion.
        value = repr(value)
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"cost_usd {value!r} is not a number") from exc


def _key(name: str) -> str:
    return _UNSAFE_KEY_CHARS.sub("_", name)


def _json(tags: Mapping[str, str], key: str, kind: type[list[Any]] | type[dict[str, Any]]) -> Any:
    value = json.loads(tags.get(key, "[]" if kind is list else "{}"))
    if not isinstance(value, kind):
        raise ValueError(f"{key} holds {type(value).__name__}, expected a JSON {kind.__name__}")
    return value
