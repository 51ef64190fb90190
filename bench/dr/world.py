"""The world the drill runs in: two sites with their stores, a model held by both, a served deployment.

With ``sandbox`` each site's store is a real object-store server on loopback (SeaweedFS behind S3 for
``aws-us-east``, fake-gcs-server for ``gcp-eu-west``: what ``stratus sandbox up`` runs), so killing "a
whole site" kills its store too; without, the stores are folders and only processes can be killed.
The model reaches the stores the way a user's would: a one-step pipeline writes it at one site and
replicates it to the other (``stratus run``), and ``stratus serve export.onnx`` stages it from each
site's own store. Everything goes through the real CLI; the deployment's processes are children of
its supervisor, not of the bench, and are stopped with ``stratus serve stop``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.serving.model import make_logit
from bench.serving.processes import pin
from stratus import sandbox
from stratus.processes import free_ports
from stratus.sandbox import Server, ServerKind

__all__ = ["MODEL", "SITES", "World", "build_world", "cli", "serve", "stop"]

MODEL = "logit"
#: Site → (sandbox server kind, bucket, provider, region); the sandbox's own names for these clouds.
SITES: dict[str, tuple[ServerKind, str, str, str]] = {
    "aws-us-east": ("s3", "stratus-aws", "aws", "us-east-1"),
    "gcp-eu-west": ("gcs", "stratus-gcp", "gcp", "europe-west4"),
}
_STEPS = textwrap.dedent(
    """
    from pathlib import Path

    def export(ctx):
        ctx.output("onnx").write_bytes(Path(ctx.params["source"]).read_bytes())
    """
)


@dataclass
class World:
    """A folder with a platform file, the stores behind its sites and (once served) the deployment."""

    folder: Path
    stores: dict[str, Server] = field(default_factory=dict)  # site → its store server (sandbox only)
    deployment: dict[str, Any] = field(default_factory=dict)  # `serve --json` as printed at start

    @property
    def sandbox(self) -> bool:
        """Whether the sites' stores are real servers that can be killed."""
        return bool(self.stores)

    @property
    def serve_folder(self) -> Path:
        """Where `stratus serve` keeps the deployment record (read by the kill functions)."""
        return self.folder / ".stratus" / "serve" / MODEL  # each deployment in a folder of its own


def cli(*args: str, cwd: Path, cpu: int | None = None, timeout_s: float = 180) -> str:
    """Run ``stratus ARGS`` (pinned to ``cpu`` when given); its stdout, or RuntimeError with its output."""
    command = [sys.executable, "-m", "stratus", *args]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    done = subprocess.run(
        pin(cpu, command) if cpu is not None else command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"stratus {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def _site(name: str, storage: str, options: dict[str, Any] | None) -> dict[str, Any]:
    _kind, _bucket, provider, region = SITES[name]
    site: dict[str, Any] = {
        "provider": provider,
        "region": region,
        "storage": storage,
        "compute": {"backend": "local"},
        "offerings": "catalog",
    }
    if options:
        site["storage_options"] = options
    return site


def _start_stores(folder: Path) -> dict[str, Server]:
    stores: dict[str, Server] = {}
    try:
        for site, (kind, bucket, _provider, _region) in SITES.items():
            server = sandbox.start_server(kind, folder / ".stratus" / "stores" / kind)
            stores[site] = server
            sandbox.create_bucket(server, bucket)
    except BaseException:
        for server in stores.values():
            sandbox.stop_server(server, hard=True)
        raise
    return stores


def build_world(folder: Path, *, use_sandbox: bool) -> World:
    """Write the platform and pipeline, start the stores, and run the pipeline that stores the model."""
    folder.mkdir(parents=True, exist_ok=True)
    world = World(folder, _start_stores(folder) if use_sandbox else {})
    try:
        sites = {}
        for name, (_kind, bucket, _provider, _region) in SITES.items():
            store = world.stores.get(name)
            if store is None:
                sites[name] = _site(name, f"file://sites/{name}", None)
            else:
                sites[name] = _site(name, store.url(bucket, "stratus"), store.options())
        (folder / "stratus.yaml").write_text(yaml.safe_dump({"sites": sites}, sort_keys=False))
        (folder / "dr_steps.py").write_text(_STEPS)
        source = make_logit(folder / "logit-source.onnx")
        first, *others = SITES
        step = {
            "run": "dr_steps:export",
            "outputs": {"onnx": {"size_gb": 0.0001}},
            "replicate": others,
            "constraints": {"sites": [first]},
            "estimated_hours": 0.01,
            "params": {"source": str(source)},
        }
        pipeline = {"name": "dr-model", "steps": {"export": step}}
        (folder / "pipeline.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
        cli("run", "pipeline.yaml", cwd=folder)
    except BaseException:
        stop(world)
        raise
    return world


def serve(world: World, *, cpu: int | None = None) -> dict[str, Any]:
    """``stratus serve export.onnx`` from both sites, two gateways and the DNS responder, detached."""
    port, dns_port = free_ports(2)
    out = cli(
        "serve", "export.onnx", "--name", MODEL, "--sites", ",".join(SITES), "--gateways", "2",
        "--port", str(port), "--dns-port", str(dns_port), "--detach", "--json",
        cwd=world.folder, cpu=cpu,
    )  # fmt: skip
    world.deployment = json.loads(out)
    return world.deployment


def stop(world: World) -> None:
    """Stop the deployment (if one runs) and every store server; never raises."""
    if world.deployment:
        try:
            cli("serve", "stop", cwd=world.folder, timeout_s=120)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"! serve stop: {exc}", flush=True)
        world.deployment = {}
    for server in world.stores.values():
        sandbox.stop_server(server, hard=True)
