"""The model registry as the models page shows it: every model with all its versions and their lineage.

MLflow is imported only when this runs (the registry opens lazily), so the other pages never pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stratus.config import Platform
from stratus.errors import StratusError
from stratus.registry import ModelDetails, Registry
from stratus.state import state_dir

__all__ = ["RegistryView", "registry_view"]


@dataclass(frozen=True)
class RegistryView:
    """Where the registry is, its models (newest version first in each), and why it could not be read."""

    uri: str
    models: tuple[ModelDetails, ...]
    problem: str | None = None


def registry_view(platform: Platform, platform_file: Path) -> RegistryView:
    """The platform's registry (its ``registry.tracking_uri``, else the embedded store beside the file)."""
    tracking_uri = platform.registry.tracking_uri if platform.registry else None
    try:
        registry = Registry.open(tracking_uri, state_dir(platform_file))
    except StratusError as exc:
        return RegistryView(tracking_uri or "(embedded)", (), str(exc))
    try:
        models = tuple(registry.show(m.name) for m in registry.list_models())
    except StratusError as exc:
        return RegistryView(registry.shown_uri, (), str(exc))
    return RegistryView(registry.shown_uri, models)
