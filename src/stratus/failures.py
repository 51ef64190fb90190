"""Error classes: is a failure the infrastructure's (retry, move elsewhere) or the step code's (stop)?

This module is the one place that decides. A failure of the *infrastructure* (a refused, reset or timed
out connection, a 5xx from a store, a reclaimed spot machine, a worker killed by a signal, a Stratus
storage or executor error) may well not happen again, so the runner retries it and fails over. A failure
of the *user's step code* (an exception it raised, a declared output it did not write, a return value
that is not a mapping of metrics, an entry point that cannot be imported) happens again on every try,
so the runner runs it once, shows the end of its log, and stops: retrying would only triple the wait
before the same traceback. A step opts back in with ``retry_on_error: true``.

It sits below executors and runner (it imports only :mod:`stratus.errors`), because the worker decides
the class of an exception where it is raised and the runner decides it for everything else.
"""

from __future__ import annotations

import errno
import socket
import urllib.error
from collections.abc import Iterator, Mapping
from typing import Literal

from stratus.errors import ExecutorError, StorageError

__all__ = [
    "FAILURE_CLASSES",
    "ErrorClass",
    "FailureKind",
    "classify_exception",
    "classify_failure",
]

ErrorClass = Literal["user", "infrastructure"]

#: How a step's process ended badly (``StepResult.failure``), as the executor observed it.
FailureKind = Literal["error", "unreachable", "crashed", "timeout", "memory", "preempted", "cancelled"]

#: Each way a step's process can end badly, and whose failure it is.
FAILURE_CLASSES: Mapping[FailureKind, ErrorClass] = {
    # The step's code raised, missed an output or returned a non-mapping; the worker caught and said so.
    "error": "user",
    # It exceeded the memory it declared: the same limit is hit again on every try.
    "memory": "user",
    # The step's code raised, but with a connection, timeout or 5xx error, or a Stratus storage/executor
    # error: something it reached for was not there this time.
    "unreachable": "infrastructure",
    # The worker died without reporting (killed by a signal: the OOM killer, a lost node, a crash).
    "crashed": "infrastructure",
    # It ran past its time limit: a hung read or a slow machine as often as slow code.
    "timeout": "infrastructure",
    # A spot machine was reclaimed under it.
    "preempted": "infrastructure",
    # Stopped on purpose (Ctrl-C, a group member failed); never retried on its own account.
    "cancelled": "infrastructure",
}

# errno values that mean "the other end is not there (now)", whatever exception carries them.
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ETIMEDOUT,
        errno.EPIPE,
    }
)


# What HTTP and cloud client libraries call their "could not reach it" errors (requests, urllib3,
# botocore, aiohttp, httpx), matched by class name so that none of them has to be imported here.
_NETWORK_CLASS_NAMES = frozenset(
    {
        "ConnectionError",  # requests, botocore (EndpointConnectionError's base)
        "ConnectError",  # httpx
        "ClientConnectionError",  # aiohttp
        "ServerDisconnectedError",  # aiohttp
        "NetworkError",  # httpx
        "ConnectTimeout",  # requests, httpx
        "ReadTimeout",  # requests, httpx
        "ConnectTimeoutError",  # urllib3, botocore
        "ReadTimeoutError",  # urllib3, botocore
        "NewConnectionError",  # urllib3
    }
)


def classify_failure(kind: FailureKind) -> ErrorClass:
    """The class of a step process's failure kind (see :data:`FAILURE_CLASSES`)."""
    return FAILURE_CLASSES[kind]


def classify_exception(exc: BaseException) -> ErrorClass:
    """``infrastructure`` when ``exc`` (or anything in its cause chain) says a service was unreachable.

    That is: a Stratus StorageError or ExecutorError, a ConnectionError, TimeoutError or socket error,
    an OSError with a network errno, an HTTP client library's connection or timeout error, a URLError
    whose reason is one of those, or an HTTP error with a 5xx status (urllib, requests, aiohttp and
    botocore all carry it somewhere). Anything else raised by step code is the code's own failure:
    ``user``.
    """
    for link in _chain(exc):
        if isinstance(link, StorageError | ExecutorError):
            return "infrastructure"
        if isinstance(link, ConnectionError | TimeoutError | socket.gaierror | socket.herror):
            return "infrastructure"
        if isinstance(link, OSError) and link.errno in _NETWORK_ERRNOS:
            return "infrastructure"
        if any(cls.__name__ in _NETWORK_CLASS_NAMES for cls in type(link).__mro__):
            return "infrastructure"
        if isinstance(link, urllib.error.URLError) and not isinstance(link, urllib.error.HTTPError):
            reason = link.reason
            if isinstance(reason, BaseException) and classify_exception(reason) == "infrastructure":
                return "infrastructure"
        if _server_error(link):
            return "infrastructure"
    return "user"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it was raised from or while handling (each once; chains can loop)."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        # An explicit ``raise ... from None`` says the context does not explain the error.
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)


def _server_error(exc: BaseException) -> bool:
    """An HTTP error with a 5xx status, wherever its library keeps the status (the first one found)."""
    if isinstance(exc, SystemExit):
        return False  # its ``code`` is an exit status, not an HTTP one
    status = _status(exc)
    return status is not None and 500 <= status <= 599


def _status(exc: BaseException) -> int | None:
    for name in ("status", "status_code", "code"):  # aiohttp, requests-like, urllib (in that order)
        value = getattr(exc, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):  # botocore's ClientError keeps a dict
        metadata = response.get("ResponseMetadata")
        value = metadata.get("HTTPStatusCode") if isinstance(metadata, Mapping) else None
        return value if isinstance(value, int) else None
    for name in ("status_code", "status"):  # requests' HTTPError keeps the Response
        value = getattr(response, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
