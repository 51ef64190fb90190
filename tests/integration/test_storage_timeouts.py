"""A store that is down fails in seconds with a StorageError naming the site, on every cloud SDK.

Real sockets on loopback: a closed port (connection refused) and a silent server (accepts, never
answers, so only a read timeout ends the wait). Elapsed times are printed for the record, never asserted.
Also against the real fake-gcs-server: a raw GCS access token is used as credentials, without the
``tokeninfo`` round trip to Google that used to put the token in an error message.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stratus.errors import StorageError
from stratus.storage import SiteStore, Timeouts, open_store

pytest_plugins = ["tests.servers"]
pytestmark = pytest.mark.slow

GCS_TOKEN = "ya29.planted-gcs-token-for-timeouts-test"
AZ_KEY = "cGxhbnRlZC1henVyZS1rZXktZm9yLXRpbWVvdXRz"
S3_SECRET = "planted-s3-secret-for-timeouts-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A server that accepts connections and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def _store(scheme: str, port: int, timeouts: Timeouts | None = None) -> SiteStore:
    endpoint = f"http://127.0.0.1:{port}"
    if scheme == "s3":
        options: dict[str, Any] = {"endpoint_url": endpoint, "key": "AKIDTIMEOUTS", "secret": S3_SECRET}
        url = "s3://bucket/prefix"
    elif scheme == "gs":
        options, url = {"endpoint_url": endpoint, "token": GCS_TOKEN, "project": "p"}, "gs://bucket/prefix"
    else:
        options = {
            "connection_string": f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZ_KEY};BlobEndpoint={endpoint}/devstoreaccount1;"
        }
        url = "az://container/prefix"
    return open_store(f"{scheme}-site", url, options, timeouts=timeouts)


def _fails_naming_the_site(store: SiteStore, tmp_path: Path, label: str) -> str:
    local = tmp_path / "payload.bin"
    local.write_bytes(b"x" * 1024)
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        store.publish(local)
    print(f"{label}: publish failed after {time.monotonic() - started:.1f} s")  # for the report
    message = str(caught.value)
    assert message.startswith(f"site {store.site} ({store.url}): "), message
    assert caught.value.site == store.site
    for secret in (GCS_TOKEN, AZ_KEY, S3_SECRET):
        assert secret not in message
    return message


@pytest.mark.parametrize("scheme", ["s3", "gs", "az"])
def test_a_closed_port_fails_with_the_default_budget(scheme: str, tmp_path: Path) -> None:
    store = _store(scheme, _free_port())
    message = _fails_naming_the_site(store, tmp_path, f"{scheme} closed port, default timeouts")
    assert "connect" in message.lower(), message


@pytest.mark.parametrize("scheme", ["s3", "gs", "az"])
def test_a_silent_server_is_cut_off_by_the_read_timeout(
    scheme: str, silent_port: int, tmp_path: Path
) -> None:
    limits = Timeouts(connect_s=1.0, read_s=1.0, attempts=1)
    store = _store(scheme, silent_port, limits)
    message = _fails_naming_the_site(store, tmp_path, f"{scheme} silent server, read_s=1 attempts=1")
    assert any(verb in message for verb in ("publishing", "looking up", "checking")), message


def test_a_raw_gcs_token_is_used_as_credentials_without_asking_google(fake_gcs: Any, tmp_path: Path) -> None:
    # Before: gcsfs sent the token to oauth2.googleapis.com/tokeninfo while opening the store (even with
    # an endpoint_url), which fails without that network and printed the token in the error.
    options = {**fake_gcs.options(), "token": GCS_TOKEN}
    store = open_store("gcp-site", fake_gcs.url("raw-token"), options)
    local = tmp_path / "model.bin"
    local.write_bytes(b"weights" * 1000)
    info = store.publish(local)
    assert store.rehash(info.sha256) == info.sha256
