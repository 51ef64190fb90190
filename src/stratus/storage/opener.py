"""From a site's storage URL to a backend: scheme registry, lazy SDK imports, the root inside the store.

The cloud SDKs are optional extras. They are imported only when a URL needs them, and a missing one is
reported as the extra to install rather than as an ImportError from deep inside fsspec.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from stratus.errors import StorageError
from stratus.storage.backend import Backend, LocalBackend, MemoryBackend
from stratus.storage.remote import FsspecBackend, S3Backend
from stratus.storage.s3native import native_s3
from stratus.storage.timeouts import S3FS_WRAPPER_TRIES, Timeouts, gcs_filesystem, limit_azure, s3_options

__all__ = ["BackendRoot", "locate"]


@dataclass(frozen=True)
class _Scheme:
    protocol: str  # fsspec's name for it
    module: str  # the SDK that implements it
    extra: str  # pip install 'stratus[extra]'


_SCHEMES: dict[str, _Scheme] = {
    "s3": _Scheme("s3", "s3fs", "aws"),
    "gs": _Scheme("gcs", "gcsfs", "gcp"),
    "gcs": _Scheme("gcs", "gcsfs", "gcp"),
    "az": _Scheme("abfs", "adlfs", "azure"),
    "abfs": _Scheme("abfs", "adlfs", "azure"),
}
KNOWN_SCHEMES = ("file", "memory", *_SCHEMES)


@dataclass(frozen=True)
class BackendRoot:
    """A parsed storage URL: the backend to talk to and the root key under which the store lives."""

    backend: Backend
    root: str
    scheme: str


def _local(url: str, base_dir: Path | None) -> BackendRoot:
    raw = url[len("file://") :]
    path = Path(raw)
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    root = path.resolve()
    return BackendRoot(LocalBackend(tmp_dir=root / "tmp"), str(root), "file")


def _memory(url: str) -> BackendRoot:
    fsspec = importlib.import_module("fsspec")
    name = url[len("memory://") :].strip("/")
    if not name:
        raise StorageError("memory:// needs a name, e.g. memory://site-a", url=url)
    return BackendRoot(MemoryBackend(fsspec.filesystem("memory")), f"/{name}", "memory")


def _import_sdk(scheme: _Scheme, url: str) -> None:
    if scheme.module == "gcsfs":
        # gcsfs probes for hierarchical-namespace buckets over gRPC unless told not to; against an
        # emulator (or without that feature) every call then waits 30–60 s. It reads this at import.
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    try:
        importlib.import_module(scheme.module)
    except ImportError as exc:
        raise StorageError(
            f"the {scheme.module} package is needed for {url.split('://', 1)[0]}:// URLs; "
            f"install it with: pip install 'stratus[{scheme.extra}]'",
            url=url,
        ) from exc


def _credentials_from_url(parts: SplitResult, scheme: _Scheme, kwargs: dict[str, Any], url: str) -> str:
    """``s3://KEY:SECRET@bucket/prefix``: the key and secret become options (unless given there too) and
    the bucket is what follows the ``@``; other schemes take credentials in ``storage_options`` only."""
    if scheme.module != "s3fs":
        raise StorageError(
            f"a password in a {parts.scheme}:// URL is not supported; put the credentials in the "
            "site's storage_options (and keep them in the environment)",
            url=url,
        )
    kwargs.setdefault("key", unquote(parts.username or ""))
    kwargs.setdefault("secret", unquote(parts.password or ""))
    return parts.netloc.rsplit("@", 1)[1]


def _backend(scheme: _Scheme, kwargs: dict[str, Any], limits: Timeouts) -> Backend:
    """The SDK's filesystem with our timeouts and retry budget applied (see :mod:`.timeouts`)."""
    if scheme.module == "gcsfs":
        return FsspecBackend(gcs_filesystem(kwargs, limits))
    fsspec = importlib.import_module("fsspec")
    if scheme.module == "s3fs":
        options = s3_options(kwargs, limits)
        fs = fsspec.filesystem(scheme.protocol, **options)
        fs.retries = S3FS_WRAPPER_TRIES
        return S3Backend(fs, native_s3(options))
    fs = fsspec.filesystem(scheme.protocol, **kwargs)
    limit_azure(fs, kwargs, limits)
    return FsspecBackend(fs)


def _remote(url: str, scheme: _Scheme, options: Mapping[str, Any], limits: Timeouts) -> BackendRoot:
    _import_sdk(scheme, url)
    parts = urlsplit(url)
    # Each instance gets its own timeouts, so none is shared through fsspec's instance cache.
    kwargs: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True, **options}
    netloc = parts.netloc
    if parts.password is not None:
        netloc = _credentials_from_url(parts, scheme, kwargs, url)
    container = netloc.split("@", 1)[0]  # abfs://container@account.dfs.core.windows.net/prefix
    if not container:
        raise StorageError(
            f"the URL names no bucket or container; expected {parts.scheme}://NAME/prefix", url=url
        )
    if "@" in netloc and scheme.module == "adlfs" and "account_name" not in kwargs:
        kwargs["account_name"] = netloc.split("@", 1)[1].split(".", 1)[0]
    try:
        backend = _backend(scheme, kwargs, limits)
    except Exception as exc:  # any SDK complaint about the options is the user's to fix
        raise StorageError(f"cannot open the store with the given options: {exc}", url=url) from exc
    root = f"{container}/{parts.path.strip('/')}".rstrip("/")
    return BackendRoot(backend, root, parts.scheme)


def locate(
    url: str,
    options: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
    timeouts: Timeouts | None = None,
) -> BackendRoot:
    """Parse ``url`` and build its backend; ``file://`` paths that are relative resolve against base_dir.

    Network stores get ``timeouts`` (default :class:`Timeouts`): bounded connects, reads and retries.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme == "file":
        return _local(url, base_dir)
    if scheme == "memory":
        return _memory(url)
    if scheme in _SCHEMES:
        return _remote(url, _SCHEMES[scheme], options or {}, timeouts or Timeouts())
    expected = ", ".join(f"{s}://" for s in KNOWN_SCHEMES)
    raise StorageError(f"unknown storage scheme; expected one of {expected}", url=url)
