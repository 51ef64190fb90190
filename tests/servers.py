"""Pytest fixtures for real object-store servers on loopback: SeaweedFS (S3), Azurite, fake-gcs-server.

Load with ``pytest_plugins = ["tests.servers"]`` in a test module, so that every module shares one server
of each kind per session, and use what the fixtures yield (a :class:`TestServer`) rather than importing
from here. The start/stop code is :mod:`stratus.sandbox`, the same that ``stratus sandbox up`` runs; a
server that cannot start fails the test with its log tail, it never skips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stratus import sandbox
from stratus.sandbox import Server, ServerKind

__all__ = ["TestServer", "azurite", "fake_gcs", "seaweedfs", "server_factory"]


@dataclass
class TestServer:
    """A running server with one bucket (container) made for tests; tests isolate themselves by prefix."""

    __test__ = False  # not a test class, whatever its name says

    server: Server
    bucket: str = "stratus-test"

    @property
    def kind(self) -> ServerKind:
        return self.server.kind

    def url(self, prefix: str = "") -> str:
        """Storage URL for ``prefix`` inside the test bucket, e.g. ``s3://stratus-test/t-1234``."""
        return self.server.url(self.bucket, prefix)

    def options(self, **overrides: Any) -> dict[str, Any]:
        """fsspec options for open_store, with ``overrides`` (e.g. a wrong secret) applied."""
        return {**self.server.options(), **overrides}

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: no flush, no goodbye."""
        sandbox.stop_server(self.server, hard=True)

    def restart(self) -> None:
        """Start it again on the same port with the same data folder; returns once it takes writes."""
        self.server = sandbox.restart_server(self.server)
        sandbox.create_bucket(self.server, self.bucket)


def _start(kind: ServerKind, folder: Path) -> TestServer:
    try:
        handle = TestServer(sandbox.start_server(kind, folder))
        sandbox.create_bucket(handle.server, handle.bucket)
    except Exception as exc:  # a missing server is a failure with its reason, never a silent skip
        pytest.fail(f"could not start the {kind} test server: {exc}", pytrace=False)
    return handle


def _session_server(kind: ServerKind, factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    handle = _start(kind, factory.mktemp(f"{kind}-server"))
    try:
        yield handle
    finally:
        sandbox.stop_server(handle.server, timeout_s=3)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    """SeaweedFS's S3 gateway (s3:// URLs; endpoint, key and secret in the options)."""
    yield from _session_server("s3", tmp_path_factory)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    """Azurite's blob service (az:// URLs; a connection string in the options)."""
    yield from _session_server("azure", tmp_path_factory)


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    """fake-gcs-server (gs:// URLs; endpoint_url and an anonymous token in the options)."""
    yield from _session_server("gcs", tmp_path_factory)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[[ServerKind], TestServer]]:
    """Start private servers for one test (fault tests kill them); every one is stopped at the end."""
    started: list[TestServer] = []

    def start(kind: ServerKind) -> TestServer:
        handle = _start(kind, tmp_path / f"{kind}-{len(started)}")
        started.append(handle)
        return handle

    yield start
    for handle in started:
        sandbox.stop_server(handle.server, timeout_s=3)
