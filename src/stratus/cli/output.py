"""How every command talks to people and to scripts: rich for humans, exactly one JSON object for --json."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

__all__ = ["console", "print_json", "stderr"]


def console() -> Console:
    """Standard output for tables and progress; wide enough that tables do not wrap in CI logs."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def stderr() -> Console:
    """Standard error for diagnostics, so --json output stays parseable."""
    return Console(stderr=True, highlight=False)


def print_json(payload: dict[str, Any]) -> None:
    """One JSON object on stdout, nothing else."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=False) + "\n")
