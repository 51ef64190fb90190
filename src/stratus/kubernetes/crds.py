"""Objects of the operators a site may run: JobSet, Kubeflow's PyTorchJob, KubeRay's RayCluster.

Built as lightkube generic resources (a CRD has no model in lightkube); their pod templates come from
the same typed :func:`~stratus.kubernetes.render.pod_spec` as a plain Job's, so they are checked against
the official PodTemplateSpec schema like any core object (see :mod:`.validate`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lightkube.core.resource import NamespacedResource
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import Container, ContainerPort, EnvVar, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import ObjectMeta

from stratus.config import Resources
from stratus.kubernetes.names import owner_labels
from stratus.kubernetes.render import COORDINATOR_PORT, Workload, pod_spec, rank_env
from stratus.kubernetes.target import Target
from stratus.step import ENV_COORDINATOR, ENV_RANK, ENV_SITE, ENV_SITES, ENV_WORLD_SIZE

__all__ = ["JOBSET", "PYTORCHJOB", "RAYCLUSTER", "render_jobset", "render_pytorchjob", "render_raycluster"]

JOBSET = create_namespaced_resource("jobset.x-k8s.io", "v1alpha2", "JobSet", "jobsets")
PYTORCHJOB = create_namespaced_resource("kubeflow.org", "v1", "PyTorchJob", "pytorchjobs")
RAYCLUSTER = create_namespaced_resource("ray.io", "v1", "RayCluster", "rayclusters")


def _template(labels: dict[str, str], spec: PodSpec) -> dict[str, Any]:
    return PodTemplateSpec(metadata=ObjectMeta(labels=labels), spec=spec).to_dict()


def _meta(name: str, target: Target, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": target.namespace, "labels": labels}


def _labels(work: Workload, target: Target) -> dict[str, str]:
    return owner_labels(
        site=target.site, team=work.team, project=work.project, run=work.run_id, step=work.step
    )


def render_jobset(work: Workload, target: Target, world_size: int) -> NamespacedResource:
    """A distributed step as a JobSet of one Indexed Job; JobSet gives pods stable DNS names itself."""
    name = work.name()
    labels = _labels(work, target)
    coordinator = f"{name}-ranks-0-0.{name}:{COORDINATOR_PORT}"  # <jobset>-<job>-<jobIndex>-<podIndex>
    spec = pod_spec(work, target, extra_env=rank_env(work, target, world_size, coordinator))
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": world_size,
        "parallelism": world_size,
        "backoffLimit": 0,
        "template": _template(labels, spec),
    }
    if work.timeout_s is not None:
        job_spec["activeDeadlineSeconds"] = int(work.timeout_s + 0.999)
    body = {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": _meta(name, target, labels),
        "spec": {
            "network": {"enableDNSHostnames": True},
            "failurePolicy": {"maxRestarts": work.max_attempts - 1},
            "replicatedJobs": [{"name": "ranks", "replicas": 1, "template": {"spec": job_spec}}],
        },
    }
    return JOBSET.from_dict(body)  # type: ignore[no-any-return]


def render_pytorchjob(work: Workload, target: Target, world_size: int) -> NamespacedResource:
    """A distributed step as a PyTorchJob; the operator's RANK and MASTER_ADDR become our contract."""
    name = work.name()
    labels = _labels(work, target)
    bridge = (
        f'export {ENV_RANK}="$RANK" {ENV_WORLD_SIZE}="$WORLD_SIZE" '
        f'{ENV_COORDINATOR}="$MASTER_ADDR:$MASTER_PORT"; exec "$@"'
    )
    bridged = replace(work, command=["sh", "-c", bridge, "sh", *work.command])
    sites = EnvVar(name=ENV_SITES, value=",".join([target.site] * world_size))
    spec = pod_spec(bridged, target, container="pytorch", extra_env=[sites])
    replicas: dict[str, Any] = {
        "Master": {"replicas": 1, "restartPolicy": "Never", "template": _template(labels, spec)}
    }
    if world_size > 1:
        replicas["Worker"] = {
            "replicas": world_size - 1,
            "restartPolicy": "Never",
            "template": _template(labels, spec),
        }
    run_policy: dict[str, Any] = {"backoffLimit": work.max_attempts - 1}
    if work.timeout_s is not None:
        run_policy["activeDeadlineSeconds"] = int(work.timeout_s + 0.999)
    body = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": _meta(name, target, labels),
        "spec": {"runPolicy": run_policy, "pytorchReplicaSpecs": replicas},
    }
    return PYTORCHJOB.from_dict(body)  # type: ignore[no-any-return]


def render_raycluster(
    target: Target, *, name: str, worker: Resources, workers: int, team: str | None, project: str | None
) -> NamespacedResource:
    """A KubeRay RayCluster for a site whose steps run on Ray: a head and an autoscaled worker group.

    The head runs no steps (``num-cpus: 0``); workers are sized to the largest step so any step fits.
    Its dashboard on 8265 is the Ray Jobs API that ``compute: {backend: ray, address: ...}`` points at.
    """
    labels = owner_labels(site=target.site, team=team, project=project)
    head_work = Workload(run_id="", step="head", command=[], resources=Resources(cpus=1, memory_gb=4))
    head = pod_spec(head_work, target, container="ray-head", restart_policy="Always")
    head.containers[0].command = None
    head.containers[0].ports = [
        ContainerPort(containerPort=6379, name="gcs"),
        ContainerPort(containerPort=8265, name="dashboard"),
        ContainerPort(containerPort=10001, name="client"),
    ]
    worker_work = Workload(run_id="", step="worker", command=[], resources=worker)
    worker_spec = pod_spec(worker_work, target, container="ray-worker", restart_policy="Always")
    worker_spec.containers[0].command = None
    _no_step_env(head.containers[0])
    _no_step_env(worker_spec.containers[0])
    body = {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": _meta(name, target, labels),
        "spec": {
            "enableInTreeAutoscaling": True,
            "headGroupSpec": {
                "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
                "template": _template(labels, head),
            },
            "workerGroupSpecs": [
                {
                    "groupName": "workers",
                    "replicas": workers,
                    "minReplicas": 0,
                    "maxReplicas": max(workers, 1) * 4,
                    "rayStartParams": {},
                    "template": _template(labels, worker_spec),
                }
            ],
        },
    }
    return RAYCLUSTER.from_dict(body)  # type: ignore[no-any-return]


def _no_step_env(container: Container) -> None:
    # A Ray node is not one step's run: the per-step variables pod_spec adds would mislead.
    container.env = [e for e in container.env or [] if e.name == ENV_SITE] or None
