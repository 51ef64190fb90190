"""The per-object S3 requests (HEAD, ranged GET, PUT, DELETE, LIST) through obstore, a Rust S3 client.

Copying thousands of small objects costs requests, not bytes, and botocore spends about 2 ms of Python
CPU on each (user-agent strings, endpoint rules, hooks, signing, date parsing): measured on 1000 ×
256 KiB between two SeaweedFS servers here, the copy used 3.5–4 s of client CPU through aiobotocore and
1.0 s through obstore, whose requests are built, signed and sent on its own Rust threads. obstore
(developmentseed's bindings to Apache Arrow's ``object_store``) is used only where it behaves exactly as
s3fs would with the same options: explicit credentials (or anonymous), a known region, and options this
module understands. Anything else — a profile, botocore's credential chain, a custom CA bundle, an option
we do not translate — keeps every request on s3fs. Multipart uploads, server-side copies, sweeps and
streaming reads always stay on s3fs (:mod:`.remote`).

Timeouts and retries come from the same ``config_kwargs`` that s3fs gets (see :mod:`.timeouts`), so a
store that is down fails within the same budget on either client.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config, S3Store

__all__ = ["NativeS3", "native_s3"]

#: Options whose meaning obstore reproduces; any other option keeps the store on s3fs alone.
_TOP = frozenset(
    {"endpoint_url", "key", "secret", "token", "anon", "client_kwargs", "config_kwargs"}
    | {"use_listings_cache", "skip_instance_cache"}  # s3fs-internal caching, nothing on the wire
)
_CLIENT = frozenset({"region_name", "endpoint_url"})
_CONFIG = frozenset(
    {"connect_timeout", "read_timeout", "retries", "s3", "region_name", "parameter_validation"}
    | {"request_checksum_calculation", "response_checksum_validation"}
)
_S3 = frozenset({"payload_signing_enabled", "addressing_style"})
#: The longest one request may take end to end: read_timeout ends a silent server, this a stalled upload
#: (a 16 MiB part at 60 KB/s still fits).
_REQUEST_CAP_S = 300.0


def _first(*candidates: Any) -> str | None:
    return next((str(value) for value in candidates if value), None)


def _endpoint(options: Mapping[str, Any]) -> str | None:
    client = options.get("client_kwargs") or {}
    env = os.environ.get
    return _first(
        options.get("endpoint_url"),
        client.get("endpoint_url"),
        env("AWS_ENDPOINT_URL_S3"),
        env("AWS_ENDPOINT_URL"),
    )


def _region(options: Mapping[str, Any], endpoint: str | None) -> str | None:
    client, config = options.get("client_kwargs") or {}, options.get("config_kwargs") or {}
    env = os.environ.get
    found = _first(
        client.get("region_name"), config.get("region_name"), env("AWS_REGION"), env("AWS_DEFAULT_REGION")
    )
    # botocore signs for us-east-1 when nothing names a region; on AWS itself s3fs would look the
    # bucket's region up, which obstore does not: leave that case to s3fs.
    return found or ("us-east-1" if endpoint else None)


def _understood(options: Mapping[str, Any]) -> bool:
    config = options.get("config_kwargs") or {}
    return (
        set(options) <= _TOP
        and set(options.get("client_kwargs") or {}) <= _CLIENT
        and set(config) <= _CONFIG
        and set(config.get("s3") or {}) <= _S3
    )


def _credentials(options: Mapping[str, Any]) -> S3Config | None:
    if options.get("anon"):
        return {"skip_signature": True}
    key, secret = options.get("key"), options.get("secret")
    if not key or not secret:
        return None  # botocore's chain (environment, profiles, instance roles): s3fs resolves it
    found: S3Config = {"access_key_id": str(key), "secret_access_key": str(secret)}
    if options.get("token"):
        found["session_token"] = str(options["token"])
    return found


def _seconds(value: Any, default: float) -> timedelta:
    return timedelta(seconds=float(value) if value is not None else default)


def native_s3(options: Mapping[str, Any]) -> NativeS3 | None:
    """The obstore client for these s3fs ``options`` (after :func:`.timeouts.s3_options`), or None.

    None when obstore is not installed or when the options ask for anything it would not do the same
    way as s3fs; the caller then sends every request through s3fs.
    """
    if not _understood(options):
        return None
    credentials = _credentials(options)
    endpoint = _endpoint(options)
    region = _region(options, endpoint)
    scheme = urlsplit(endpoint).scheme if endpoint else "https"
    if credentials is None or region is None or scheme not in ("http", "https"):
        return None
    if scheme == "https" and os.environ.get("AWS_CA_BUNDLE"):
        return None  # a private CA that botocore trusts and obstore would not
    try:
        importlib.import_module("obstore")
    except ImportError:
        return None
    config = options.get("config_kwargs") or {}
    s3 = config.get("s3") or {}
    # botocore signs the payload over plain HTTP and not over TLS unless told otherwise; do the same.
    signed = s3.get("payload_signing_enabled", scheme == "http")
    store: S3Config = {**credentials, "region": region, "unsigned_payload": not signed}
    if endpoint:
        store["endpoint"] = endpoint
    if s3.get("addressing_style") == "virtual":
        store["virtual_hosted_style_request"] = True
    if config.get("request_checksum_calculation", "when_supported") != "when_required":
        store["checksum_algorithm"] = "SHA256"  # botocore would send a CRC32: the service checks the body
    client: ClientConfig = {
        "allow_http": scheme == "http",
        "connect_timeout": _seconds(config.get("connect_timeout"), 60.0),
        "read_timeout": _seconds(config.get("read_timeout"), 60.0),
        "timeout": timedelta(seconds=_REQUEST_CAP_S),
    }
    attempts = int((config.get("retries") or {}).get("max_attempts", 3))
    retry: RetryConfig = {
        "max_retries": max(0, attempts - 1),
        "backoff": {"init_backoff": timedelta(seconds=0.1), "max_backoff": timedelta(seconds=2), "base": 2},
        "retry_timeout": timedelta(seconds=_REQUEST_CAP_S),
    }
    return NativeS3(store, client, retry)


def _message(exc: BaseException) -> str:
    """obstore's first line, plus what its multi-line Rust ``Debug source:`` dump says went wrong.

    The first line of a connection failure says only "error sending request"; the kind (Connect,
    Timeout, …) and the system's words ("Connection refused") are in the dump.
    """
    head, _, dump = str(exc).partition("Debug source:")
    text = " ".join(head.split())
    kind = re.search(r"HttpError \{\s*kind: (\w+)", dump)
    said = re.findall(r'message: "([^"]*)"', dump)
    detail = "; ".join(part for part in (kind.group(1) if kind else "", *said[-1:]) if part)
    return f"{text} ({detail})" if detail else text


@contextlib.contextmanager
def _as_builtin() -> Iterator[None]:
    """obstore's exceptions as the built-in ones s3fs raises, which callers and messages rely on."""
    errors = importlib.import_module("obstore.exceptions")
    try:
        yield
    except errors.NotFoundError as exc:
        raise FileNotFoundError(_message(exc)) from exc
    except (errors.PermissionDeniedError, errors.UnauthenticatedError) as exc:
        raise PermissionError(_message(exc)) from exc
    except errors.BaseError as exc:
        raise OSError(_message(exc)) from exc


class NativeS3:
    """One obstore client per bucket, built on first use; keys are ``bucket/path`` as in s3fs."""

    def __init__(self, config: S3Config, client: ClientConfig, retry: RetryConfig) -> None:
        self.config = config  # what obstore is told: read by the tests that pin the translation
        self.client = client
        self.retry = retry
        self._stores: dict[str, S3Store] = {}
        self._obstore = importlib.import_module("obstore")

    def _locate(self, key: str) -> tuple[S3Store, str]:
        bucket, _, path = key.partition("/")
        store = self._stores.get(bucket)
        if store is None:
            module = importlib.import_module("obstore.store")
            store = module.S3Store(
                bucket, config=self.config, client_options=self.client, retry_config=self.retry
            )
            self._stores[bucket] = store
        return store, path

    async def size(self, key: str) -> int | None:
        """Size in bytes, or None when the key holds no object."""
        store, path = self._locate(key)
        try:
            with _as_builtin():
                meta = await self._obstore.head_async(store, path)
        except FileNotFoundError:
            return None
        return int(meta["size"])

    async def read(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``; FileNotFoundError when the object is missing."""
        store, path = self._locate(key)
        with _as_builtin():
            data = await self._obstore.get_range_async(store, path, start=start, end=end)
        return bytes(data)

    async def put(self, key: str, data: bytes) -> None:
        """One PUT: the object appears whole or not at all."""
        store, path = self._locate(key)
        with _as_builtin():
            await self._obstore.put_async(store, path, data, use_multipart=False)

    async def delete(self, key: str) -> None:
        """Remove the object (S3 answers a missing one with success too)."""
        store, path = self._locate(key)
        with _as_builtin():
            await self._obstore.delete_async(store, path)

    async def list(self, prefix: str) -> list[tuple[str, int]]:
        """Every object under the folder ``prefix`` as (``bucket/path``, size)."""
        store, path = self._locate(prefix.rstrip("/"))
        bucket = prefix.split("/", 1)[0]
        found: list[tuple[str, int]] = []
        with _as_builtin():
            async for batch in self._obstore.list(store, path or None, chunk_size=1000):
                found.extend((f"{bucket}/{meta['path']}", int(meta["size"])) for meta in batch)
        return found
