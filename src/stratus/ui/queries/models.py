"""The model registry as the models page shows it: every model with all its versions and their lineage.

MLflow is imported only when this runs (the registry opens lazily), so the other pages never pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from stratus.errors import StratusError
from stratus.registry import ModelDetails
from stratus.workspace import Workspace

__all__ = ["RegistryView", "registry_view"]


@dataclass(frozen=True)
class RegistryView:
    """Where the registry is, its models (newest version first in each), and why it could not be read."""

    uri: str
    models: tuple[ModelDetails, ...]
    problem: str | None = None


def registry_view(workspace: Workspace) -> RegistryView:
    """The platform's registry (its ``registry.tracking_uri``, else the embedded store beside the file)."""
    tracking_uri = workspace.tracking_uri
    try:
        registry = workspace.registry()
    except StratusError as exc:
        return RegistryView(tracking_uri or "(embedded)", (), str(exc))
    try:
        models = tuple(registry.show(m.name) for m in registry.list_models())
    except StratusError as exc:
        return RegistryView(registry.shown_uri, (), str(exc))
    return RegistryView(registry.shown_uri, models)
