"""The two ways Kubernetes work fails: a manifest that a schema refuses, a cluster that refuses a call."""

from __future__ import annotations

from stratus.errors import StratusError

__all__ = ["ClusterError", "ManifestError"]


class ManifestError(StratusError):
    """A rendered object does not validate against its schema; names the object, field and reason."""

    exit_code = 2


class ClusterError(StratusError):
    """A context's API server refused or did not answer; names the context, namespace and object."""
