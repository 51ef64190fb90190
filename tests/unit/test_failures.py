"""The error classifier: what is the infrastructure's failure (retried, failed over) and what is the step's.

Exceptions are the real ones the libraries raise (urllib, botocore, requests, aiohttp), built as those
libraries build them, so a change in where a library keeps its status code shows up here.
"""

from __future__ import annotations

import errno
import socket
import urllib.error
from email.message import Message
from typing import get_args

import aiohttp
import pytest
import requests
from botocore.exceptions import ClientError, EndpointConnectionError

from stratus.errors import ConfigError, ExecutorError, RegistryError, StorageError
from stratus.failures import FAILURE_CLASSES, ErrorClass, FailureKind, classify_exception, classify_failure


def _raised(make: type[BaseException] | BaseException, cause: BaseException | None = None) -> BaseException:
    """An exception as Python leaves it after ``raise make from cause`` (or while handling ``cause``)."""
    try:
        try:
            if cause is not None:
                raise cause
        except BaseException:
            raise make  # noqa: B904 — the implicit context is what is being tested
        raise make
    except BaseException as exc:
        return exc


def _http_error(code: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("http://store/x", code, "status", Message(), None)


def _boto(status: int) -> ClientError:
    response = {"Error": {"Code": "X", "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "HeadObject")  # type: ignore[arg-type]


def _requests(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} error", response=response)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("column 'amount' has 3 negative values"), "user"),
        (KeyError("features"), "user"),
        (FileNotFoundError(errno.ENOENT, "no such file", "train.parquet"), "user"),
        (ZeroDivisionError("division by zero"), "user"),
        (SystemExit(503), "user"),  # an exit status, not an HTTP one
        (ConfigError("bad field", field="steps.x"), "user"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "infrastructure"),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "infrastructure"),
        (TimeoutError("timed out"), "infrastructure"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "infrastructure"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "infrastructure"),
        (StorageError("publish failed", site="aws-us-east", url="s3://b/p"), "infrastructure"),
        (ExecutorError("cannot start", step="train", site="gcp"), "infrastructure"),
        (urllib.error.URLError(ConnectionRefusedError(errno.ECONNREFUSED, "refused")), "infrastructure"),
        (urllib.error.URLError("unknown url type: htp"), "user"),
        (_http_error(503), "infrastructure"),
        (_http_error(404), "user"),
        (_boto(500), "infrastructure"),
        (_boto(403), "user"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "infrastructure"),
        (_requests(502), "infrastructure"),
        (_requests(400), "user"),
        (requests.ConnectionError("Max retries exceeded"), "infrastructure"),
        (requests.ReadTimeout("read timed out"), "infrastructure"),
        (aiohttp.ServerDisconnectedError(), "infrastructure"),
        (aiohttp.ClientResponseError(None, (), status=503, message="Service Unavailable"), "infrastructure"),  # type: ignore[arg-type]
        (aiohttp.ClientResponseError(None, (), status=409, message="Conflict"), "user"),  # type: ignore[arg-type]
    ],
    ids=repr,
)
def test_each_exception_is_classed_by_what_it_says(exc: BaseException, expected: ErrorClass) -> None:
    assert classify_exception(exc) == expected


def test_a_wrapper_raised_from_a_network_error_is_infrastructure() -> None:
    # What the registry does: its own error, raised while handling the socket's refusal.
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    wrapped = _raised(RegistryError("cannot reach the MLflow tracking server"), refused)
    assert wrapped.__context__ is refused
    assert classify_exception(wrapped) == "infrastructure"
    assert classify_exception(RegistryError("no such .onnx file to register")) == "user"


def test_a_step_that_handles_an_outage_and_raises_from_none_is_its_own_error() -> None:
    def download() -> None:
        try:
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        except ConnectionResetError:
            raise ValueError("no rows after the download") from None

    with pytest.raises(ValueError, match="no rows") as caught:
        download()
    assert caught.value.__context__ is not None  # still there, but suppressed
    assert classify_exception(caught.value) == "user"


def test_a_cause_chain_that_loops_ends() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert classify_exception(first) == "user"


def test_every_failure_kind_has_a_class() -> None:
    assert set(FAILURE_CLASSES) == set(get_args(FailureKind))
    assert [k for k in get_args(FailureKind) if classify_failure(k) == "user"] == ["error", "memory"]
