"""What the ServerApp and the ClientApps put in their messages: record names, keys and byte counts.

One module both sides import, so a renamed key breaks both at once instead of silently reading nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord

__all__ = [
    "CONFIG",
    "IDENTITY",
    "METRICS",
    "MODEL",
    "STATS",
    "array_bytes",
    "get_float",
    "get_int",
    "get_str",
    "message_array_bytes",
    "node_site",
    "record",
]

MODEL = "model"  # ArrayRecord: weights (and, server to client, mean and scale)
CONFIG = "config"  # ConfigRecord: round and local training settings
IDENTITY = "identity"  # ConfigRecord: site, data-path, feature-columns, error
STATS = "stats"  # ArrayRecord: per-feature sum and sum of squares over the training rows
METRICS = "metrics"  # MetricRecord: example counts, losses, AUCs, seconds


_Record = TypeVar("_Record", ArrayRecord, ConfigRecord, MetricRecord)


def record(message: Message, key: str, kind: type[_Record]) -> _Record:
    """The record ``key`` of a message's content, or ``ValueError`` if it is absent or of another kind (a
    peer running a different version of this app)."""
    value = message.content.get(key)
    if not isinstance(value, kind):
        raise ValueError(f"message has no {kind.__name__} {key!r} (got {type(value).__name__})")
    return value


def array_bytes(arrays: ArrayRecord) -> int:
    """Serialised bytes of every array in ``arrays``: what crosses the network for parameters."""
    return sum(len(array.data) for array in arrays.values())


def message_array_bytes(message: Message) -> int:
    """Serialised array bytes in a message's content; 0 for an error reply."""
    if not message.has_content():
        return 0
    return sum(array_bytes(arrays) for arrays in message.content.array_records.values())


def node_site(context: Context) -> tuple[str, str]:
    """This SuperNode's ``site`` and ``data-path`` from its ``--node-config``; both are required because
    a node that cannot say where it is cannot be checked for data residency."""
    site = context.node_config.get("site")
    path = context.node_config.get("data-path")
    if not isinstance(site, str) or not site:
        raise ValueError("the SuperNode has no site: start it with --node-config 'site=\"NAME\" ...'")
    if not isinstance(path, str) or not path:
        raise ValueError(f"SuperNode of site {site!r} has no data-path in its --node-config")
    return site, path


def get_int(values: Mapping[str, object], key: str) -> int:
    """``values[key]`` as an int, or ``ValueError`` naming the key (records and configs are untyped)."""
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"{key!r} must be an integer, got {value!r}")
    return int(value)


def get_float(values: Mapping[str, object], key: str) -> float:
    """``values[key]`` as a float, or ``ValueError`` naming the key."""
    value = values.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key!r} must be a number, got {value!r}")
    return float(value)


def get_str(values: Mapping[str, object], key: str, default: str | None = None) -> str:
    """``values[key]`` as a string (``default`` when absent), or ``ValueError`` naming the key."""
    value = values.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {value!r}")
    return value
