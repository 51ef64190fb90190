"""A step attempt's log, read from the path the runner recorded for it: the tail only, secrets removed.

The dashboard never opens a path a request names: the attempt is looked up in the manifest by run, step
and attempt number, and only the file that row names is read, from its end, at most
:data:`LOG_TAIL_BYTES`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stratus.redact import redact

__all__ = ["LOG_TAIL_BYTES", "LogText", "read_log"]

#: The most of a log the dashboard shows (its end); a multi-GB log is never read whole.
LOG_TAIL_BYTES = 256 * 1024


@dataclass(frozen=True)
class LogText:
    """What was read: the text, whether the start was cut, the file's size, or why nothing was read."""

    text: str
    truncated: bool
    size_bytes: int
    problem: str | None = None


def read_log(path: str | None, limit: int = LOG_TAIL_BYTES) -> LogText:
    """The last ``limit`` bytes of the log at ``path`` as text (invalid UTF-8 replaced, secrets masked)."""
    if not path:
        return LogText("", False, 0, "this attempt recorded no log")
    try:
        with Path(path).open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            raw = f.read(limit)
    except OSError as exc:
        return LogText("", False, 0, f"the log cannot be read: {exc.strerror or exc}")
    text = raw.decode("utf-8", errors="replace")
    if size > limit:  # the first line is probably cut in the middle: start at the next whole one
        text = text.split("\n", 1)[1] if "\n" in text else text
    return LogText(redact(text), size > limit, size)
