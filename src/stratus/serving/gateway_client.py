"""Reading the gateway's admin API (site states, routes) for `serve status` and the chaos drill."""

from __future__ import annotations

import http.client
import json
from typing import Any

from stratus.errors import ServingError

__all__ = ["admin_get", "admin_post", "site_states"]


def _call(url: str, token: str, method: str, path: str, timeout_s: float) -> Any:
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=timeout_s)
    try:
        conn.request(method, path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        body = response.read()
    except OSError as exc:
        raise ServingError(f"the gateway at {url} does not answer ({exc})", status=503) from exc
    finally:
        conn.close()
    if response.status != 200:
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
