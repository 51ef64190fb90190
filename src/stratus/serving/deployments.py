"""A platform's deployments: each in a folder of its own under ``.stratus/serve/``, chosen by name.

Several models can be served from one platform at once, each with its own supervisor, gateways, port and
record, in ``.stratus/serve/NAME/`` (``NAME`` is the model's name in URLs, or ``--name``). A record left
in ``.stratus/serve/`` itself by a version that ran one deployment per platform is still listed and
selected (by its model's name), so such a deployment can be seen and stopped after an upgrade.

Every command that acts on a deployment takes ``--name``; without it the platform's only deployment is
meant, and with several a :class:`ConfigError` (exit 2) lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stratus.config.names import check_safe_name
from stratus.errors import ConfigError, ServingError
from stratus.serving.deployment import Deployment, deployment_file, load_deployment

__all__ = ["Listed", "choose_deployment", "deployment_folder", "list_deployments", "require_deployment"]


@dataclass(frozen=True)
class Listed:
    """One recorded deployment: its folder and its record."""

    folder: Path
    deployment: Deployment

    @property
    def name(self) -> str:
        """What ``--name`` selects it by."""
        return self.deployment.deployment_name


def deployment_folder(root: Path, name: str) -> Path:
    """Where the deployment called ``name`` keeps its record, logs and staged models."""
    return root / check_safe_name(name, "--name")


def list_deployments(root: Path) -> list[Listed]:
    """Every deployment recorded under ``root`` (the platform's serving folder), by name.

    A record that cannot be read raises ServingError naming its file, as ``serve status`` always did.
    """
    folders = [root] if deployment_file(root).is_file() else []
    if root.is_dir():
        folders += sorted(p for p in root.iterdir() if p.is_dir() and deployment_file(p).is_file())
    listed = []
    for folder in folders:
        deployment = load_deployment(folder)
        if deployment is not None:  # removed between the listing and the read: it just stopped
            listed.append(Listed(folder, deployment))
    return sorted(listed, key=lambda item: item.name)


def choose_deployment(root: Path, name: str | None) -> Listed | None:
    """The deployment called ``name``, or the only one when no name is given; None when there is none.

    ConfigError (exit 2) when ``name`` names none of several, or when several run and none is named.
    """
    listed = list_deployments(root)
    if name is None:
        if len(listed) > 1:
            raise ConfigError(
                f"{len(listed)} deployments are recorded here ({_names(listed)}): name one with --name",
                field="--name",
            )
        return listed[0] if listed else None
    check_safe_name(name, "--name")
    for item in listed:
        if item.name == name:
            return item
    if listed:
        raise ConfigError(f"no deployment named {name!r}; deployments: {_names(listed)}", field="--name")
    return None


def require_deployment(root: Path, name: str | None) -> Listed:
    """Like :func:`choose_deployment`, but no deployment at all is a ServingError saying how to start one."""
    chosen = choose_deployment(root, name)
    if chosen is None:
        named = f" named {name!r}" if name else ""
        raise ServingError(
            f"no deployment{named} is running here: start one with `stratus serve MODEL --sites A,B`",
            status=400,
        )
    return chosen


def _names(listed: list[Listed]) -> str:
    return ", ".join(item.name for item in listed)
