"""A step as Kubernetes objects, built from lightkube's typed models; pure (no I/O, no clock).

One step at one site is a ``batch/v1`` Job. Its pod failure policy encodes the runner's failure classes
(:mod:`stratus.failures`) in the cluster's own terms: a pod disrupted under it (spot reclaim, node
drain, preemption) does not count against ``backoffLimit``, and an exit code that means the step's own
code failed (the worker's 1, 2 and 3) fails the Job at once instead of retrying the same traceback.
A distributed step at one site is an Indexed Job plus a headless Service its ranks meet through.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lightkube.models.batch_v1 import (
    JobSpec,
    PodFailurePolicy,
    PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern,
    PodFailurePolicyRule,
)
from lightkube.models.core_v1 import (
    Container,
    EnvVar,
    EnvVarSource,
    ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource,
    PodSpec,
    PodTemplateSpec,
    ResourceRequirements,
    ServicePort,
    ServiceSpec,
    Toleration,
    Volume,
    VolumeMount,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Service

from stratus.config import Resources
from stratus.kubernetes.names import dns_name, owner_labels
from stratus.kubernetes.nodes import node_requirements
from stratus.kubernetes.target import Target
from stratus.step import (
    ENV_COORDINATOR,
    ENV_RANK,
    ENV_RUN_ID,
    ENV_SITE,
    ENV_SITES,
    ENV_STEP,
    ENV_WORLD_SIZE,
)

__all__ = [
    "COORDINATOR_PORT",
    "STEP_CONTAINER",
    "USER_EXIT_CODES",
    "Workload",
    "pod_spec",
    "render_indexed_job",
    "render_job",
    "worker_command",
]

STEP_CONTAINER = "step"
COORDINATOR_PORT = 29500
#: The worker's exit codes for the step's own failures: raised/missed output, broken entry point, memory.
USER_EXIT_CODES = (1, 2, 3)
REQUEST_ENV = "STRATUS_REQUEST"
_COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
_FINISHED_TTL_S = 86_400  # a finished Job (and its pods' logs) stays a day for `kubectl logs`


@dataclass(frozen=True)
class Workload:
    """One step's run at one site, in the terms every renderer shares."""

    run_id: str
    step: str
    command: Sequence[str]
    resources: Resources = field(default_factory=Resources)
    env: Mapping[str, str] = field(default_factory=dict)
    spot: bool = False
    max_attempts: int = 1
    retry_on_error: bool = False
    timeout_s: float | None = None
    team: str | None = None
    project: str | None = None
    work_path: str | None = None  # where the site's work volume is mounted (the runner's work folder)
    # Let the cluster retry disruptions and stop on user errors (a rendered Job on its own); off when
    # the runner drives attempts and failover itself (the executor's Jobs).
    cluster_retries: bool = True

    def name(self, *suffix: str) -> str:
        """The object name: run and step folded into one DNS label."""
        return dns_name("stratus", self.run_id, self.step, *suffix)


def worker_command(request: Mapping[str, object]) -> tuple[list[str], dict[str, str]]:
    """The container command and env that run ``python -m stratus.executors.worker`` on ``request``.

    The request travels in an environment variable (no ConfigMap to create, apply and clean up) and is
    written to a file in the pod, since the worker reads one.
    """
    script = (
        f'printf "%s" "${REQUEST_ENV}" > /tmp/stratus-request.json && '
        "exec python -m stratus.executors.worker /tmp/stratus-request.json"
    )
    return ["sh", "-c", script], {REQUEST_ENV: json.dumps(dict(request), sort_keys=True, default=str)}


def _quantity(value: float) -> str:
    return f"{value:g}"


def _resources(resources: Resources, extended: Mapping[str, str]) -> ResourceRequirements:
    # No CPU limit: CFS throttling slows a step without protecting anyone; memory is a hard limit.
    memory = f"{_quantity(resources.memory_gb)}G"
    return ResourceRequirements(
        requests={"cpu": _quantity(resources.cpus), "memory": memory, **extended},
        limits={"memory": memory, **extended},
    )


def pod_spec(
    work: Workload,
    target: Target,
    *,
    container: str = STEP_CONTAINER,
    extra_env: Sequence[EnvVar] = (),
    restart_policy: str = "Never",
    subdomain: str | None = None,
) -> PodSpec:
    """The pod of a step: one container, its resources, node selector and tolerations, the work volume."""
    needs = node_requirements(target.provider, work.resources.accelerators, work.spot)
    env = [EnvVar(name=k, value=v) for k, v in sorted(work.env.items())]
    env += [
        EnvVar(name=ENV_RUN_ID, value=work.run_id),
        EnvVar(name=ENV_STEP, value=work.step),
        EnvVar(name=ENV_SITE, value=target.site),
        *extra_env,
    ]
    volumes: list[Volume] | None = None
    mounts: list[VolumeMount] | None = None
    if target.work_claim and work.work_path:
        claim = PersistentVolumeClaimVolumeSource(claimName=target.work_claim)
        volumes = [Volume(name="work", persistentVolumeClaim=claim)]
        mounts = [VolumeMount(name="work", mountPath=work.work_path)]
    return PodSpec(
        containers=[
            Container(
                name=container,
                image=target.image,
                command=list(work.command),
                env=env,
                resources=_resources(work.resources, needs.extended),
                volumeMounts=mounts,
            )
        ],
        restartPolicy=restart_policy,
        nodeSelector=needs.node_selector or None,
        tolerations=[
            Toleration(key=key, operator="Equal", value=value, effect="NoSchedule")
            for key, value in needs.tolerations
        ]
        or None,
        volumes=volumes,
        subdomain=subdomain,
    )


def _failure_policy(work: Workload) -> PodFailurePolicy:
    rules = [
        PodFailurePolicyRule(
            action="Ignore",
            onPodConditions=[PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget", status="True")],
        )
    ]
    if not work.retry_on_error:
        codes = PodFailurePolicyOnExitCodesRequirement(
            containerName=STEP_CONTAINER, operator="In", values=list(USER_EXIT_CODES)
        )
        rules.append(PodFailurePolicyRule(action="FailJob", onExitCodes=codes))
    return PodFailurePolicy(rules=rules)


def _labels(work: Workload, target: Target) -> dict[str, str]:
    return owner_labels(
        site=target.site, team=work.team, project=work.project, run=work.run_id, step=work.step
    )


def _deadline(work: Workload) -> int | None:
    return math.ceil(work.timeout_s) if work.timeout_s is not None else None


def render_job(work: Workload, target: Target) -> Job:
    """A step as a Job: ``backoffLimit`` = ``max_attempts - 1``, deadline, pod failure policy, labels."""
    labels = _labels(work, target)
    return Job(
        metadata=ObjectMeta(name=work.name(), namespace=target.namespace, labels=labels),
        spec=JobSpec(
            backoffLimit=work.max_attempts - 1,
            activeDeadlineSeconds=_deadline(work),
            ttlSecondsAfterFinished=_FINISHED_TTL_S,
            podFailurePolicy=_failure_policy(work) if work.cluster_retries else None,
            template=PodTemplateSpec(metadata=ObjectMeta(labels=labels), spec=pod_spec(work, target)),
        ),
    )


def rank_env(work: Workload, target: Target, world_size: int, coordinator: str) -> list[EnvVar]:
    """The ``STRATUS_*`` rendezvous contract (stratus.training.cluster), rank from the completion index."""
    index = EnvVarSource(fieldRef=ObjectFieldSelector(fieldPath=_COMPLETION_INDEX))
    return [
        EnvVar(name=ENV_RANK, valueFrom=index),
        EnvVar(name=ENV_WORLD_SIZE, value=str(world_size)),
        EnvVar(name=ENV_COORDINATOR, value=coordinator),
        EnvVar(name=ENV_SITES, value=",".join([target.site] * world_size)),
    ]


def render_indexed_job(work: Workload, target: Target, world_size: int) -> tuple[Job, Service]:
    """A distributed step's ranks as one Indexed Job, and the headless Service that gives them names.

    Pod ``i`` is ``<job>-<i>.<service>``; rank 0's name is the coordinator every rank dials. The whole
    group restarts together (``backoffLimitPerIndex`` is not used): DDP cannot resume with a rank lost.
    """
    name = work.name()
    labels = _labels(work, target)
    coordinator = f"{name}-0.{name}:{COORDINATOR_PORT}"
    spec = pod_spec(work, target, extra_env=rank_env(work, target, world_size, coordinator), subdomain=name)
    job = Job(
        metadata=ObjectMeta(name=name, namespace=target.namespace, labels=labels),
        spec=JobSpec(
            completionMode="Indexed",
            completions=world_size,
            parallelism=world_size,
            backoffLimit=work.max_attempts - 1,
            activeDeadlineSeconds=_deadline(work),
            ttlSecondsAfterFinished=_FINISHED_TTL_S,
            podFailurePolicy=_failure_policy(work),
            template=PodTemplateSpec(metadata=ObjectMeta(labels=labels), spec=spec),
        ),
    )
    service = Service(
        metadata=ObjectMeta(name=name, namespace=target.namespace, labels=labels),
        spec=ServiceSpec(
            clusterIP="None",
            selector={"job-name": name},
            ports=[ServicePort(name="rendezvous", port=COORDINATOR_PORT, targetPort=COORDINATOR_PORT)],
            publishNotReadyAddresses=True,  # ranks must find each other before any is "ready"
        ),
    )
    return job, service
