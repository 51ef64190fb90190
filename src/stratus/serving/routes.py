"""The V2 model paths and the answers the model server and the gateway must give alike.

Why one table: a path that is no route (404), a wrong method on a route (405 with Allow) and an unknown
model (404) must get the same status and message from a server and through the gateway, and the route
(hence the allowed method) is known from the path alone, before the model is looked up. No numpy here:
the gateway imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from stratus.errors import ServingError

__all__ = [
    "EXTENSIONS",
    "ModelPath",
    "method_not_allowed",
    "model_path",
    "parse_index_request",
    "unknown_model",
]

#: The protocol extensions server and gateway metadata announce (Triton's names, as its clients look for
#: them); the repository index is served, but not the load/unload that "model_repository" would promise.
EXTENSIONS = ("binary_tensor_data", "model_configuration", "statistics")

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


def unknown_model(name: str, known: Sequence[str]) -> str:
    """The one message for an unknown model (a 404, as Triton answers), said alike by server and gateway."""
    return f"unknown model {name!r}: the models served here are {sorted(known)}"


def method_not_allowed(method: str, allowed: str) -> str:
    """The one message of a 405 (sent with an Allow header), said alike by server and gateway."""
    return f"method {method} not allowed here; use {allowed}"


def parse_index_request(body: bytes) -> bool:
    """The ``ready`` filter of a repository index request: an empty body, or ``{"ready": true|false}``."""
    if not body.strip():
        return False
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ServingError(f"request body is not valid JSON: {exc}", status=400) from None
    ready = doc.get("ready", False) if isinstance(doc, dict) else None
    if type(ready) is not bool:
        raise ServingError(
            'a repository index request is empty or a JSON object such as {"ready": true}', status=400
        )
    return ready
