"""A real OpenBao dev server for the tests of secret references (started and stopped by PID)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stratus.sandbox.openbao import OpenBao, start_openbao, stop_openbao

__all__ = ["openbao"]


@pytest.fixture(scope="module")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    """One dev server per test module; KV v2 at ``secret/``, the root token in ``.root_token``."""
    try:
        server = start_openbao(tmp_path_factory.mktemp("openbao"))
    except Exception as exc:  # a missing server is a failure with its reason, never a silent skip
        pytest.fail(f"could not start OpenBao: {exc}", pytrace=False)
    try:
        yield server
    finally:
        stop_openbao(server)
