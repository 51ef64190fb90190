"""What an operator set on a running deployment (drained sites, weights), applied to every gateway.

A drain or a weight lives in each gateway's memory, so `stratus serve drain` must reach every gateway of
the deployment, and a gateway the supervisor restarts must get it again. The intent is therefore kept
in a file of its own beside the deployment record (written by the admin commands, read by the
supervisor, so neither overwrites what the other wrote), and applied through each gateway's
bearer-token admin API.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stratus.errors import ConfigError, ServingError
from stratus.private_files import write_private
from stratus.serving.deployment import Deployment
from stratus.serving.gateway_client import admin_post

__all__ = [
    "OperatorState",
    "apply_state",
    "check_site",
    "load_operator_state",
    "parse_weights",
    "remove_operator_state",
    "save_operator_state",
]


@dataclass
class OperatorState:
    """Sites drained by an operator and weights set by one (sites not named keep their configured weight)."""

    drained: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)


def _file(folder: Path) -> Path:
    return folder / "operator.json"


def load_operator_state(folder: Path) -> OperatorState:
    """The recorded intent; empty when none was set."""
    try:
        payload = json.loads(_file(folder).read_text())
    except FileNotFoundError:
        return OperatorState()
    except (OSError, ValueError) as exc:
        problem = f"{_file(folder)}: cannot read the operator settings ({exc})"
        raise ServingError(problem, status=500) from None
    return OperatorState(drained=list(payload["drained"]), weights=dict(payload["weights"]))


def save_operator_state(folder: Path, state: OperatorState) -> None:
    """Write the intent atomically (owner-only, like the deployment record)."""
    path = _file(folder)
    write_private(path, json.dumps(asdict(state), indent=2).encode())


def remove_operator_state(folder: Path) -> None:
    """Forget the intent: a new deployment starts with no site drained and the configured weights."""
    _file(folder).unlink(missing_ok=True)


def check_site(deployment: Deployment, site: str) -> None:
    """ConfigError (exit 2) naming SITE unless the deployment serves from ``site``."""
    if site not in deployment.site_names:
        raise ConfigError(
            f"unknown site {site!r}; this deployment serves from {', '.join(deployment.site_names)}",
            field="SITE",
        )


def parse_weights(text: str, deployment: Deployment) -> dict[str, float]:
    """``A=3,B=1`` → {A: 3.0, B: 1.0}; every mistake is a ConfigError naming WEIGHTS and what is expected."""
    weights: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        site, equals, number = (piece.strip() for piece in item.partition("="))
        if not equals or not site or not number:
            raise ConfigError(
                f"{item!r} is not SITE=WEIGHT; expected e.g. {_example(deployment)}", field="WEIGHTS"
            )
        if site not in deployment.site_names:
            raise ConfigError(
                f"unknown site {site!r}; this deployment serves from {', '.join(deployment.site_names)}",
                field="WEIGHTS",
            )
        if site in weights:
            raise ConfigError(f"site {site!r} is given twice", field="WEIGHTS")
        try:
            weight = float(number)
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"{site}={number}: expected a number >= 0 as the weight", field="WEIGHTS")
        weights[site] = weight
    return weights


def _example(deployment: Deployment) -> str:
    names = deployment.site_names[:2]
    return ",".join(f"{name}={3 - i}" for i, name in enumerate(names))


def apply_state(url: str, token: str, state: OperatorState, timeout_s: float = 2.0) -> None:
    """Set ``state`` on the gateway at ``url`` (a fresh gateway has no site drained): drains, then weights."""
    for site in state.drained:
        admin_post(url, token, f"/admin/sites/{site}/drain", timeout_s)
    for site, weight in state.weights.items():
        admin_post(url, token, f"/admin/sites/{site}/weight/{weight!r}", timeout_s)
