"""Reading the gateway's admin API (site states, routes) for `serve status` and the chaos drill."""

from __future__ import annotations

import http.client
import json
from typing import Any

from stratus.errors import ServingError

__all__ = ["add_backend", "admin_get", "admin_post", "drain_backend", "remove_backend", "site_states"]


def _call(url: str, token: str, method: str, path: str, timeout_s: float, body: Any = None) -> Any:
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=timeout_s)
    headers = {"Authorization": f"Bearer {token}"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        body = response.read()
    except OSError as exc:
        raise ServingError(f"the gateway at {url} does not answer ({exc})", status=503) from exc
    finally:
        conn.close()
    if response.status not in (200, 201):
        raise ServingError(
            f"the gateway at {url} answered {method} {path} with {response.status}: {body[:200]!r}",
            status=response.status,
        )
    return json.loads(body)


def admin_get(url: str, token: str, path: str, timeout_s: float = 2.0) -> Any:
    """GET an admin path with the bearer token; a ServingError names the gateway when it fails."""
    return _call(url, token, "GET", path, timeout_s)


def admin_post(url: str, token: str, path: str, timeout_s: float = 2.0) -> Any:
    """POST an admin action (drain, undrain) with the bearer token."""
    return _call(url, token, "POST", path, timeout_s)


def site_states(url: str, token: str, timeout_s: float = 2.0) -> dict[str, dict[str, Any]]:
    """Site name → its record from ``GET /admin/sites``."""
    payload = admin_get(url, token, "/admin/sites", timeout_s)
    return {record["name"]: record for record in payload["sites"]}


def add_backend(url: str, token: str, name: str, site: str, backend_url: str, timeout_s: float = 2.0) -> Any:
    """Add a model server to the gateway at ``url`` as backend ``name`` of ``site`` (a no-op if there)."""
    body = {"name": name, "site": site, "url": backend_url}
    return _call(url, token, "POST", "/admin/backends", timeout_s, body)


def remove_backend(url: str, token: str, name: str, timeout_s: float = 2.0) -> Any:
    """Remove backend ``name`` from the gateway at ``url``."""
    return _call(url, token, "DELETE", f"/admin/backends/{name}", timeout_s)


def drain_backend(url: str, token: str, name: str, drained: bool, timeout_s: float = 2.0) -> Any:
    """Drain (or undrain) exactly backend ``name`` at the gateway at ``url``, not its whole site."""
    action = "drain" if drained else "undrain"
    return _call(url, token, "POST", f"/admin/backends/{name}/{action}", timeout_s)
