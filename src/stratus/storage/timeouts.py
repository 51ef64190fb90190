"""Bounded connect/read timeouts and retry budgets for every cloud SDK, set by us rather than left to each.

The SDKs' own defaults are tuned for a store that is slow, not for one that is gone: against an endpoint
that refuses connections one lookup took 10.7 s on s3fs/botocore, 36.5 s on gcsfs (six attempts with
exponential sleeps) and 87.4 s on adlfs/azure-core (backoff starting at 15 s), and a publish many times
that. A site that is down must fail a command in seconds, so every store opened by Stratus gets the same
budget: ``connect_s`` to open a connection, ``read_s`` for the server to send the next bytes, and
``attempts`` tries per request with short backoff. A site overrides it with ``storage_timeouts:`` in the
platform file; SDK-native options given in ``storage_options`` (botocore ``config_kwargs``, gcsfs
``requests_timeout``, adlfs ``connection_timeout``/``read_timeout``) win over ours.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["S3FS_WRAPPER_TRIES", "Timeouts", "gcs_filesystem", "limit_azure", "s3_options"]


@dataclass(frozen=True)
class Timeouts:
    """How long a store gets: to connect, to send the next bytes of a response, and how many tries."""

    connect_s: float = 5.0
    read_s: float = 30.0
    attempts: int = 3

    def __post_init__(self) -> None:
        if self.connect_s <= 0 or self.read_s <= 0 or self.attempts < 1:
            raise ValueError(f"timeouts must be positive and attempts at least 1, got {self}")


def s3_options(options: Mapping[str, Any], limits: Timeouts) -> dict[str, Any]:
    """s3fs options with botocore's timeouts and a bounded ``standard``-mode retry budget filled in."""
    ours: dict[str, Any] = {
        "connect_timeout": limits.connect_s,
        "read_timeout": limits.read_s,
        "retries": {"max_attempts": limits.attempts, "mode": "standard"},
    }
    given = options.get("config_kwargs") or {}
    return {**options, "config_kwargs": {**ours, **given}}


#: s3fs retries connection errors again around botocore's own retries (2 × 3 tries); botocore's suffice.
S3FS_WRAPPER_TRIES = 1


@functools.cache
def _gcs_request(attempts: int) -> Any:
    # gcsfs fixes its retries (6, sleeping up to 32 s each) when its class is defined; rebuild its one
    # request method with our budget from the undecorated function.
    gcsfs = importlib.import_module("gcsfs")
    retry = importlib.import_module("gcsfs.retry")
    return retry.retry_request(retries=attempts)(gcsfs.GCSFileSystem._request.__wrapped__)


@functools.cache
def _bounded_gcs_class() -> type[Any]:
    gcsfs = importlib.import_module("gcsfs")

    class BoundedGCSFileSystem(gcsfs.GCSFileSystem):  # type: ignore[misc,name-defined]
        """gcsfs with a per-instance retry budget for every HTTP request."""

        stratus_attempts = Timeouts().attempts

        async def _request(self, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            return await _gcs_request(self.stratus_attempts)(self, method, path, *args, **kwargs)

    return BoundedGCSFileSystem


def gcs_filesystem(options: Mapping[str, Any], limits: Timeouts) -> Any:
    """A gcsfs filesystem whose requests time out and retry within ``limits``.

    A raw access token (``token: ya29...``: not a file, not a method name such as ``anon``) is handed to
    gcsfs as ready-made credentials: otherwise gcsfs sends it to Google's ``tokeninfo`` endpoint to learn
    its expiry, in the query string (where any error message then shows it), and it does so even when
    ``endpoint_url`` points at another server. A token that has expired is refused by the store itself.
    """
    aiohttp = importlib.import_module("aiohttp")
    kwargs = dict(options)
    token = kwargs.get("token")
    if isinstance(token, str) and _is_raw_token(token):
        oauth2 = importlib.import_module("google.oauth2.credentials")
        kwargs["token"] = oauth2.Credentials(token)
    timeout = aiohttp.ClientTimeout(total=None, connect=limits.connect_s, sock_read=limits.read_s)
    kwargs.setdefault("requests_timeout", timeout)
    fs = _bounded_gcs_class()(**kwargs)
    fs.stratus_attempts = limits.attempts
    return fs


def _is_raw_token(token: str) -> bool:
    methods = {"google_default", "cache", "cloud", "anon", "browser", "token"}
    return token not in methods and not os.path.exists(token)


def limit_azure(fs: Any, options: Mapping[str, Any], limits: Timeouts) -> None:
    """Bound an adlfs filesystem's azure-core pipeline: its retry policy and its transport's timeouts.

    adlfs builds the service client itself and passes no retry or timeout settings to it, so they are set
    on the client's retry policy and transport after construction (the same objects every container and
    blob client of this filesystem shares). azure-core's storage default backs off 15 s, 18 s, 24 s.
    """
    client = fs.service_client
    policy = client._config.retry_policy
    retries = limits.attempts - 1
    policy.total_retries = policy.connect_retries = policy.read_retries = policy.status_retries = retries
    policy.initial_backoff, policy.increment_base, policy.random_jitter_range = 0.2, 1.5, 0.2
    connection = client._pipeline._transport.connection_config
    connection.timeout = options.get("connection_timeout", limits.connect_s)
    connection.read_timeout = options.get("read_timeout", limits.read_s)
