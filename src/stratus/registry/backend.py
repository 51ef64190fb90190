"""The one door to MLflow: imported on first use, quietly, and its exceptions translated at the door.

MLflow is an optional extra and slow to import (about a second), so nothing imports it until a registry
is actually opened: ``stratus --help`` and every other command stay fast and work without it. Its
telemetry, INFO logging and the run URLs it prints to stdout (which would corrupt ``--json``) are turned
off through the environment variables it reads, set only where the user has not set them.
"""

from __future__ import annotations

import importlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from stratus.errors import RegistryError
from stratus.registry.refs import display_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["connect", "download_artifacts", "error_code", "log_batch", "mlflow_errors", "unless"]

T = TypeVar("T")

_QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",  # read when mlflow is imported
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # read when mlflow is imported
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # read whenever a run ends
}
_PROBE_TIMEOUT_S = 10.0
_MAX_PARAMS_PER_BATCH = 100  # MLflow's log_batch limit


def _mlflow() -> Any:
    for key, value in _QUIET.items():
        os.environ.setdefault(key, value)
    try:
        return importlib.import_module("mlflow")
    except ImportError as exc:
        raise RegistryError(
            "the model registry needs MLflow, which is not installed; install it with: "
            "pip install 'stratus[registry]'"
        ) from exc


def connect(tracking_uri: str) -> MlflowClient:
    """A client bound to ``tracking_uri`` for tracking and registry alike; never touches MLflow's globals.

    A server is probed first, so an unreachable one fails in seconds with its URI named, instead of
    after MLflow's minutes of retries.
    """
    mlflow = _mlflow()
    if urlsplit(tracking_uri).scheme in ("http", "https"):
        _probe(tracking_uri)
    with mlflow_errors("open the registry", tracking_uri):
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return cast("MlflowClient", client)


def _probe(tracking_uri: str) -> None:
    """Raise if nothing answers HTTP at ``tracking_uri``; any HTTP status (even 401 or 404) is an answer."""
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=_PROBE_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryError(
            f"cannot reach the MLflow tracking server at {display_uri(tracking_uri)} ({reason}); "
            "check that it is running, and registry.tracking_uri in the platform file or --tracking-uri",
            tracking_uri=display_uri(tracking_uri),
        ) from exc


def error_code(exc: BaseException) -> str | None:
    """MLflow's error code (``RESOURCE_DOES_NOT_EXIST``, ...) when ``exc`` is an MlflowException."""
    exceptions = importlib.import_module("mlflow.exceptions")
    if isinstance(exc, exceptions.MlflowException):
        return str(exc.error_code)
    return None


def unless(code: str, call: Callable[[], T]) -> T | None:
    """``call()``, or None when MLflow refuses it with ``code`` (an expected answer, not a failure)."""
    try:
        return call()
    except Exception as exc:
        if error_code(exc) != code:
            raise
        return None


@contextmanager
def mlflow_errors(action: str, tracking_uri: str, model: str | None = None) -> Iterator[None]:
    """Turn MLflow's and the network's exceptions inside the block into a RegistryError naming the store."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as exc:
        shown = display_uri(tracking_uri)
        code = error_code(exc)
        if code is not None:
            message = str(getattr(exc, "message", exc)).strip().splitlines()[0]
            if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
                message += (
                    "; MLflow reads credentials from MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, "
                    "or MLFLOW_TRACKING_TOKEN"
                )
        elif isinstance(exc, OSError):  # includes requests' errors and local file problems
            message = str(exc)
        else:
            raise
        raise RegistryError(
            f"could not {action} in the MLflow registry at {shown}: {message}",
            tracking_uri=shown,
            model=model,
        ) from exc


def log_batch(client: MlflowClient, run_id: str, metrics: dict[str, float], params: dict[str, str]) -> None:
    """Params and metrics in as few calls as MLflow allows (100 params per call)."""
    entities = importlib.import_module("mlflow.entities")
    now_ms = int(time.time() * 1000)
    metric_rows = [entities.Metric(k, v, now_ms, 0) for k, v in metrics.items()]
    param_rows = [entities.Param(k, v) for k, v in params.items()]
    for start in range(0, max(len(param_rows), 1), _MAX_PARAMS_PER_BATCH):
        client.log_batch(
            run_id,
            metrics=metric_rows if start == 0 else [],
            params=param_rows[start : start + _MAX_PARAMS_PER_BATCH],
        )


def download_artifacts(artifact_uri: str, dest: Path, tracking_uri: str) -> Path:
    """Copy the artifacts at ``artifact_uri`` (a file or folder) under ``dest``; the local path."""
    artifacts = importlib.import_module("mlflow.artifacts")
    local = artifacts.download_artifacts(
        artifact_uri=artifact_uri, dst_path=str(dest), tracking_uri=tracking_uri, registry_uri=tracking_uri
    )
    return Path(str(local))
