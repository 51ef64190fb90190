"""Ray as a site's compute, against one real local two-node Ray cluster (``ray start``, stopped by PID).

The cluster is started once for the module (Ray takes tens of seconds to start on 2 cores): a head node
with CPUs only, and a worker node that also declares one L4 GPU, so a step that asks for an L4 can only
run on the worker. The runner talks to it only through the Jobs API, as it would to a KubeRay cluster.
The node-kill test runs last: it takes the worker node away.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stratus.config import Resources
from stratus.executors import RayExecutor, StepRequest
from stratus.sandbox.ray_cluster import (
    NodeSpec,
    RayCluster,
    alive_nodes,
    start_ray_cluster,
    stop_node,
    stop_ray_cluster,
)
from tests.integration.test_runner_multisite import MULTI_STEPS
from tests.run_world import REPO, cli_env, one_json, pipeline, platform, stratus_cli, write_world

pytestmark = pytest.mark.slow

GPU_NODE = NodeSpec(cpus=16, memory_gb=64, gpus=1, accelerator="L4")


#: Ray's GCS checks each raylet every 3 s and declares its node dead after 5 failed checks in a row; a
#: killed raylet fails each check at once (connection refused), so checking every second finds the dead
#: node ~10 s sooner. The per-check timeout (10 s) is Ray's default, so a raylet slowed by a busy machine
#: is given as long as ever before a check counts as failed.
FAST_NODE_DEATH = {"RAY_health_check_period_ms": "1000"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    with pytest.MonkeyPatch.context() as env:  # the nodes inherit the environment they start in
        for name, value in FAST_NODE_DEATH.items():
            env.setenv(name, value)
        started = start_ray_cluster(
            tmp_path_factory.mktemp("ray"), [NodeSpec(cpus=8, memory_gb=32), GPU_NODE], timeout_s=600
        )
    try:
        yield started
    finally:
        stop_ray_cluster(started)


def node_ids(cluster: RayCluster) -> dict[str, bool]:
    """Node id → whether it is the GPU (worker) node."""
    return {n["node_id"]: "GPU" in (n.get("resources_total") or {}) for n in alive_nodes(cluster.address)}


def jobs(cluster: RayCluster) -> list[Any]:
    from ray.job_submission import JobSubmissionClient

    return list(JobSubmissionClient(cluster.address).list_jobs())


def test_the_fraud_example_runs_one_site_on_ray_and_the_others_locally(
    cluster: RayCluster, tmp_path: Path
) -> None:
    source = REPO / "examples" / "fraud-detection"
    for path in source.glob("*.py"):
        shutil.copy(path, tmp_path / path.name)
    spec = yaml.safe_load((source / "pipeline.yaml").read_text())
    spec["datasets"]["raw_transactions"]["params"]["rows"] = 20_000
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    platform_spec = yaml.safe_load((source / "stratus.yaml").read_text())
    platform_spec["sites"]["gcp-eu-west"]["compute"] = {"backend": "ray", "address": cluster.address}
    (tmp_path / "stratus.yaml").write_text(yaml.safe_dump(platform_spec, sort_keys=False))

    result = stratus_cli("run", tmp_path / "pipeline.yaml", "--json", cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    report = one_json(result.stdout)
    sites = {s["step"]: s["site"] for s in report["steps"]}
    on_ray = {step for step, site in sites.items() if site == "gcp-eu-west"}
    assert "train" in on_ray, sites
    assert set(sites.values()) - {"gcp-eu-west"}, f"some step must run on the local executor: {sites}"
    # The Ray site's steps were Ray jobs; train (L4) ran on the node that has the GPU.
    ran = {
        j.metadata.get("stratus_step"): j
        for j in jobs(cluster)
        if j.metadata.get("stratus_run") == report["run_id"]
    }
    assert on_ray <= set(ran), f"steps at the Ray site without a Ray job: {on_ray - set(ran)}"
    assert all(ran[step].status == "SUCCEEDED" for step in on_ray)
    gpu = node_ids(cluster)
    assert gpu[ran["train"].driver_node_id], "the L4 step ran on a node without the GPU"
    # Their logs streamed through the Jobs API into the run's output, prefixed like local steps'.
    assert "[train@gcp-eu-west]" in result.stderr
    metrics = {s["step"]: s["metrics"] for s in report["steps"]}
    assert metrics["train"]["train_rows"] > 0  # metrics come back from the Ray job as from a local step
    assert metrics["evaluate"]["roc_auc"] > 0.5


def test_two_ranks_at_one_ray_site_run_as_one_job_on_two_nodes(cluster: RayCluster, tmp_path: Path) -> None:
    spec = pipeline()
    spec["steps"] = {
        "train": {
            "run": "flow_steps:ranks",
            "kind": "distributed",
            "sites": ["cheap", "cheap"],  # a site listed twice holds two ranks
            "inputs": ["dataset:numbers"],
            "outputs": {"model": {"size_gb": 0.01}},
            "estimated_hours": 0.1,
        }
    }
    sites = platform()
    sites["sites"]["cheap"]["compute"] = {"backend": "ray", "address": cluster.address}
    world = write_world(tmp_path, pipeline_spec=spec, platform_spec=sites)
    (tmp_path / "flow_steps.py").write_text(MULTI_STEPS, encoding="utf-8")

    result = stratus_cli("run", world, "--json", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    report = one_json(result.stdout)
    [train] = [s for s in report["steps"] if s["step"] == "train"]
    assert train["site"] == "cheap"
    assert train["metrics"]["world"] == 2  # rank 1 reached rank 0 at STRATUS_COORDINATOR
    assert "STRICT_SPREAD (one rank per node)" in result.stderr
    where = dict(re.findall(r"\[rank (\d)\] on node (\w+)", result.stderr))
    assert set(where) == {"0", "1"}, result.stderr[-3000:]
    assert where["0"] != where["1"], "both ranks ran on one node"
    assert set(where.values()) <= set(node_ids(cluster))
    [gang] = [j for j in jobs(cluster) if j.metadata.get("stratus_run") == report["run_id"] and
              j.metadata.get("stratus_step") == "train"]  # fmt: skip
    assert gang.status == "SUCCEEDED"
    assert "stratus.executors.ray_gang" in gang.entrypoint


SLEEPY = textwrap.dedent(
    """
    import time

    def sleepy(ctx):
        for i in range(int(ctx.params.get("ticks", 600))):
            print(f"tick {i}", flush=True)
            time.sleep(0.5)
        ctx.output("squares").write_text("1\\n4\\n9")
    """
)


def test_cancel_stops_the_ray_job(cluster: RayCluster, tmp_path: Path) -> None:
    (tmp_path / "sleepy_steps.py").write_text(SLEEPY)
    workdir = tmp_path / "work"
    request = StepRequest(
        run_id="r-cancel",
        step="sleepy",
        entrypoint="sleepy_steps:sleepy",
        inputs={},
        outputs={"squares": workdir / "outputs" / "squares"},
        workdir=workdir,
        python_path=[tmp_path],
        resources=Resources(cpus=1, memory_gb=1),
    )
    handle = RayExecutor("cheap", cluster.address).submit(request)
    deadline = time.monotonic() + 300
    while "tick 1" not in handle.log_path.read_text() and time.monotonic() < deadline:
        assert handle.wait(0.5) is None, "the step ended on its own before it was cancelled"
    assert "tick 1" in handle.log_path.read_text(), "the job's log never streamed into step.log"
    handle.cancel()
    result = handle.wait(120)
    assert result is not None
    assert result.failure == "cancelled"
    assert result.error_class == "infrastructure"
    assert result.error is not None
    assert "cancelled" in result.error
    [job] = [j for j in jobs(cluster) if j.metadata.get("stratus_run") == "r-cancel"]
    assert job.status == "STOPPED"


def test_a_killed_ray_node_fails_the_step_over_like_a_preemption(cluster: RayCluster, tmp_path: Path) -> None:
    """Runs last: the worker node is killed (SIGKILL to its process group) while the step runs on it."""
    spec = platform()
    spec["sites"]["cheap"]["compute"] = {"backend": "ray", "address": cluster.address}
    for name in ("cheap", "backup"):  # both sell an L4 machine; the L4 step can only run on the GPU node
        spec["sites"][name]["offerings"][0]["accelerators"] = "L4:1"
    world = write_world(
        tmp_path,
        platform_spec=spec,
        pipeline_spec=pipeline(
            square={
                "run": "sleepy_steps:sleepy",
                "params": {"ticks": 40},
                "resources": {"cpus": 1, "memory_gb": 1, "accelerators": "L4:1"},
                "replicate": [],
            }
        ),
    )
    (tmp_path / "sleepy_steps.py").write_text(SLEEPY)
    process = subprocess.Popen(
        [sys.executable, "-m", "stratus", "run", str(world), "--json"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        seen: list[str] = []
        for line in process.stderr:
            seen.append(line)
            if "[square@cheap]" in line and "tick 2" in line:
                break
        else:
            pytest.fail("the step never started on the Ray site:\n" + "".join(seen[-40:]))
        [worker] = [n for n in cluster.nodes if n.role == "worker"]
        stop_node(worker)  # the machine is gone, as a reclaimed spot VM
        stdout, rest = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = "".join(seen) + rest
    assert process.returncode == 0, stderr[-4000:]
    [square] = [s for s in one_json(stdout)["steps"] if s["step"] == "square"]
    assert square["site"] == "backup", "the step must move off the Ray site whose node died"
    assert "the Ray node running the step died" in stderr
    assert "moving to backup" in stderr
