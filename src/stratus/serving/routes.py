"""The V2 model paths, shared by the model server and the gateway so that both answer a path alike.

Why one table: a path that is no route (404), a wrong method on a route (405 with Allow) and an unknown
model (404) must get the same status from a server and through the gateway, and the route (hence the
allowed method) is known from the path alone, before the model is looked up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ModelPath", "model_path"]

# Path after /v2/models/{m}[/versions/{v}] -> (action, allowed method).
_ACTIONS: dict[tuple[str, ...], tuple[str, str]] = {
    (): ("metadata", "GET"),
    ("ready",): ("ready", "GET"),
    ("infer",): ("infer", "POST"),
    ("config",): ("config", "GET"),
    ("stats",): ("stats", "GET"),
}


@dataclass(frozen=True, slots=True)
class ModelPath:
    """A parsed ``/v2/models/...`` path: ``model`` is empty for ``/v2/models/stats`` (every model)."""

    model: str
    version: str | None
    action: str
    method: str

    @property
    def route(self) -> str:
        """The route template, for metrics (never the URL: clients could make any number of those)."""
        if not self.model:
            return "/v2/models/stats"
        return "/v2/models/{m}" if self.action == "metadata" else f"/v2/models/{{m}}/{self.action}"


def model_path(parts: Sequence[str]) -> ModelPath | None:
    """The route of ``parts`` (the path's segments after ``v2``, ``models``), or None when it is none."""
    if not parts:
        return None
    if len(parts) == 1 and parts[0] == "stats":  # Triton's "every model" statistics
        return ModelPath("", None, "stats", "GET")
    model, rest = parts[0], tuple(parts[1:])
    version = None
    if len(rest) >= 2 and rest[0] == "versions":
        version, rest = rest[1], rest[2:]
    found = _ACTIONS.get(rest)
    if found is None:
        return None
    return ModelPath(model, version, *found)
