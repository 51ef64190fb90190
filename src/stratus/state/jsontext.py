"""JSON kept in a text column (a step's metrics, its outputs, the sites it ran on): one encoding for the
writer and one decoding for every reader, so no caller parses a column itself.

No SQLAlchemy here: ``stratus runs`` reads the same columns with plain SQL (stratus.runs_view) and decodes
them with :func:`load` too.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dump", "load"]


def dump(value: Any) -> str:
    """The column's text for ``value`` (as the manifest has always written it: ``json.dumps``)."""
    return json.dumps(value)


def load(text: str | None, empty: Any) -> Any:
    """The value a column holds; ``empty`` for NULL or an empty string (rows written before the column)."""
    return json.loads(text) if text else empty
