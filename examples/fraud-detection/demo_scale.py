"""``make demo-scale`` (Ray half): the fraud pipeline with one site's compute on a local two-node Ray cluster.

Starts a real Ray cluster (a CPU head node and a worker node that declares one L4 GPU, each ``ray start``
in its own process group), writes a copy of this example's platform in which ``gcp-eu-west`` runs its
steps on that cluster (``compute: {backend: ray, address: ...}``), runs the pipeline through
``stratus run``, prints where each step ran (site, executor and, for Ray jobs, which node), and stops
the cluster by PID. State and data go to ``.stratus/demo-scale/`` beside this file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from stratus.sandbox.ray_cluster import NodeSpec, alive_nodes, start_ray_cluster, stop_ray_cluster
from stratus.state import Repository, open_database, state_url

HERE = Path(__file__).resolve().parent
RAY_SITE = "gcp-eu-west"


def platform_on_ray(address: str, out: Path) -> Path:
    """This example's platform with ``RAY_SITE``'s compute on the cluster at ``address``."""
    spec: dict[str, Any] = yaml.safe_load((HERE / "stratus.yaml").read_text(encoding="utf-8"))
    spec["sites"][RAY_SITE]["compute"] = {"backend": "ray", "address": address}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return out


def where_it_ran(platform: Path, nodes: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """(step, site, executor, node) for every step of the platform's latest run."""
    repo = Repository(open_database(state_url(platform)))
    run = repo.runs()[0]
    backends = {name: site["compute"].get("backend", "local") for name, site in _sites(platform).items()}
    rows = []
    for attempt in repo.attempts(run.id):
        node = nodes.get(str(json.loads(attempt.metrics_json or "{}").get("ray_node", "")), "-")
        rows.append(
            (attempt.step, f"{attempt.site} ({attempt.status})", backends.get(attempt.site, "?"), node)
        )
    return rows


def _sites(platform: Path) -> dict[str, Any]:
    sites: dict[str, Any] = yaml.safe_load(platform.read_text(encoding="utf-8"))["sites"]
    for site in sites.values():
        site.setdefault("compute", {})
    return sites


def main() -> int:
    folder = HERE / ".stratus" / "demo-scale"
    print("starting a local two-node Ray cluster (head: 8 CPUs; worker: 16 CPUs and an L4) …", flush=True)
    cluster = start_ray_cluster(
        folder / "ray",
        [NodeSpec(cpus=8, memory_gb=32), NodeSpec(cpus=16, memory_gb=64, gpus=1, accelerator="L4")],
    )
    try:
        nodes = {
            n["node_id"]: ("worker (L4)" if "GPU" in (n.get("resources_total") or {}) else "head")
            for n in alive_nodes(cluster.address)
        }
        print(f"Ray cluster up: {cluster.address}, nodes {', '.join(nodes.values())}", flush=True)
        platform = platform_on_ray(cluster.address, folder / "stratus.yaml")
        command = [
            sys.executable,
            "-m",
            "stratus",
            "run",
            str(HERE / "pipeline.yaml"),
            "--platform",
            str(platform),
        ]
        code = subprocess.call(command)
        print("\nwhere each step ran:")
        print(f"  {'step':<22} {'site (attempt)':<30} {'executor':<11} Ray node")
        for step, site, backend, node in where_it_ran(platform, nodes):
            print(f"  {step:<22} {site:<30} {backend:<11} {node}")
        return code
    finally:
        stop_ray_cluster(cluster)
        print("Ray cluster stopped (by process group)")


if __name__ == "__main__":
    sys.exit(main())
