"""How every command talks to people and to scripts: rich for humans, exactly one JSON object for --json.

Everything a command prints passes through :func:`stratus.redact.redact` (tables, errors, events, JSON,
log records from the SDKs, uncaught tracebacks), so a credential echoed by a vendor message never reaches
a terminal or a CI log, whichever code path printed it.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console

from stratus.redact import redact

__all__ = ["configure_logging", "console", "print_json", "stderr"]

#: SDK loggers that log every failure they raise (with a traceback) before we translate it into a
#: StorageError naming the site: shown only with --debug.
_CHATTY = ("gcsfs", "s3fs", "adlfs", "azure", "botocore", "aiobotocore", "fsspec", "urllib3")


class _Redacting:
    """A text stream that redacts each write before passing it on; everything else is the stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def console() -> Console:
    """Standard output for tables and progress; wide enough that tables do not wrap in CI logs."""
    width = None if sys.stdout.isatty() else 160
    return Console(file=_Redacting(sys.stdout), highlight=False, width=width)  # type: ignore[arg-type]


def stderr() -> Console:
    """Standard error for diagnostics, so --json output stays parseable."""
    return Console(file=_Redacting(sys.stderr), stderr=True, highlight=False)  # type: ignore[arg-type]


def print_json(payload: dict[str, Any]) -> None:
    """One JSON object on stdout, nothing else."""
    sys.stdout.write(redact(json.dumps(payload, indent=2, sort_keys=False)) + "\n")


def _redacted_excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))


class _RedactingFormatter(logging.Formatter):
    def __init__(self, tracebacks: bool) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self._tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        if not self._tracebacks:
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return redact(super().format(record))


def configure_logging(debug: bool) -> None:
    """Log records go to stderr redacted, without tracebacks unless --debug; the SDKs' own failure
    reports (which repeat what our error says, with URLs and tokens) only with --debug. A crash that
    escapes every handler (a bug) still prints its traceback, redacted."""
    sys.excepthook = _redacted_excepthook
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter(tracebacks=debug))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if debug else logging.WARNING)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING if debug else logging.CRITICAL)
