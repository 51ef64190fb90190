"""One place that keeps secrets out of everything Stratus prints, logs or stores.

Vendor SDKs put what they were given into their exception messages: a GCS token in a ``tokeninfo`` URL, a
password in a storage URL's userinfo, an Azure account key in a connection string, a presigned signature in
a query string. Any of those can reach an error message, a run event, a log line or a row of the state
database. Every such text passes through :func:`redact` on its way out, which removes two kinds of secret:

* the *values* configured in the platform (storage options such as ``token``, ``secret``,
  ``account_key``, ``connection_string``; passwords in storage, state and registry URLs), registered with
  :func:`register_secrets` / :func:`register_options` / :func:`register_url` when they are loaded, so a
  secret is hidden wherever a vendor echoes it, even in a form no pattern would recognise;
* secrets by *shape*: ``user:password@`` in any URL, credential parameters in query strings
  (``access_token=``, ``sig=``, ``X-Amz-Signature=`` …), ``AccountKey=`` / ``SharedAccessSignature=`` in
  connection strings, and ``Authorization`` headers.

This module sits below everything else (it imports nothing of ours), so errors, state, runner and CLI can
all use it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "MASK",
    "NOT_SECRET",
    "SECRET_OPTION_KEYS",
    "display_url",
    "redact",
    "register_options",
    "register_secrets",
    "register_url",
    "secrets_in_options",
]

MASK = "***"

#: Option names (any nesting, case-insensitive, ``-`` same as ``_``) whose values are credentials.
SECRET_OPTION_KEYS = frozenset(
    {
        "token",
        "key",
        "secret",
        "password",
        "passwd",
        "account_key",
        "connection_string",
        "sas_token",
        "credential",
        "credentials",
        "client_secret",
        "refresh_token",
        "access_token",
        "private_key",
        "session_token",
        "security_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "api_key",
        "secret_key",
        "access_key",
    }
)

#: Values that look like credentials by key but are method names (gcsfs ``token: anon``) or flags.
NOT_SECRET = frozenset({"anon", "google_default", "cache", "cloud", "browser", "true", "false", "none"})
_NOT_SECRET = NOT_SECRET
#: Shorter values are not matched by value: masking every "stratus" (the sandbox's S3 access key id) in
#: every bucket name would destroy messages, and a credential that short protects little. Shapes (URL
#: passwords, token parameters) are still masked whatever their length.
_MIN_SECRET_LEN = 8

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

# user:password@ inside any URL-like text (scheme://user:password@host); the user name stays.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@'\"]*:)(?P<pw>[^\s/@'\"]+)(?=@)")
# credential parameters in query strings and key=value strings (connection strings use ';').
_PARAMS = re.compile(
    r"(?P<head>\b(?:access_token|id_token|refresh_token|token|sig|signature|x-amz-signature|"
    r"x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential|awsaccesskeyid|"
    r"accountkey|sharedaccesssignature|password|pwd|client_secret|api_key|apikey)=)(?P<value>[^&;\s'\"]+)",
    re.IGNORECASE,
)
_AUTH_HEADER = re.compile(
    r"(?P<head>\b(?:authorization|x-api-key|x-goog-api-key)['\"]?\s*[:=]\s*['\"]?"
    r"(?:bearer\s+|basic\s+|sharedkey\s+|aws4-hmac-sha256\s+)?)(?P<value>[^\s'\",}]+)",
    re.IGNORECASE,
)


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that :func:`redact` hides them wherever they appear, for this process."""
    global _pattern
    fresh = {
        v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LEN and v.lower() not in _NOT_SECRET
    }
    # URL-encoded forms too: a password in a URL is usually echoed as it was written (percent-encoded).
    fresh |= {unquote(v) for v in fresh if len(unquote(v)) >= _MIN_SECRET_LEN}
    with _lock:
        if fresh <= _secrets:
            return
        _secrets.update(fresh)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def _connection_string_secrets(text: str) -> list[str]:
    found = []
    for part in text.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() in ("accountkey", "sharedaccesssignature", "password") and value:
            found.append(value.strip())
    return found


def secrets_in_options(options: Any, key: str = "") -> list[str]:
    """Every credential value in a (nested) options mapping: values under :data:`SECRET_OPTION_KEYS`,
    the parts of connection strings, and passwords inside URL-valued options."""
    found: list[str] = []
    normal = key.lower().replace("-", "_")
    if isinstance(options, Mapping):
        for k, v in options.items():
            found += secrets_in_options(v, str(k))
    elif isinstance(options, list | tuple):
        for v in options:
            found += secrets_in_options(v, key)
    elif isinstance(options, str):
        if normal in SECRET_OPTION_KEYS:
            found.append(options)
        if "=" in options and ";" in options:
            found += _connection_string_secrets(options)
        if "://" in options:
            found += _url_secrets(options)
    return found


def _url_secrets(url: str) -> list[str]:
    try:
        parts = urlsplit(url.strip())
        password = parts.password
    except ValueError:
        return []
    return [password] if password else []


def register_options(options: Mapping[str, Any] | None) -> None:
    """Register every credential in a site's storage options (see :func:`secrets_in_options`)."""
    if options:
        register_secrets(secrets_in_options(options))


def register_url(url: str | None) -> None:
    """Register the password of a URL (``s3://user:pass@bucket``, ``postgresql://u:pw@host/db``)."""
    if url:
        register_secrets(_url_secrets(url))


def display_url(url: str) -> str:
    """``url`` safe to print: its password (if any) becomes ``***``; the user name stays, to be useful."""
    return _USERINFO.sub(lambda m: m.group("head") + MASK, url)


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential-shaped substring replaced by ``***``."""
    if not text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _USERINFO.sub(lambda m: m.group("head") + MASK, text)
    text = _PARAMS.sub(lambda m: m.group("head") + MASK if m.group("value") != MASK else m.group(0), text)
    return _AUTH_HEADER.sub(lambda m: m.group("head") + MASK, text)
