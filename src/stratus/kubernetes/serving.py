"""A model served at a Kubernetes site: our model server as Deployment + Service + autoscaler, or KServe.

The Deployment runs ``python -m stratus.serving.server`` (the same V2 server ``stratus serve`` starts
locally); an init container copies the ONNX file from the site's own store into the pod first, so
serving never reads across sites. Sites that run KServe get an ``InferenceService`` instead (V2
protocol, ONNX format), which fetches ``storageUri`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lightkube.core.resource import NamespacedResource
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.autoscaling_v2 import (
    CrossVersionObjectReference,
    HorizontalPodAutoscalerSpec,
    MetricSpec,
    MetricTarget,
    ResourceMetricSource,
)
from lightkube.models.core_v1 import (
    Container,
    ContainerPort,
    EmptyDirVolumeSource,
    HTTPGetAction,
    PodSpec,
    PodTemplateSpec,
    Probe,
    ResourceRequirements,
    ServicePort,
    ServiceSpec,
    Volume,
    VolumeMount,
)
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
from lightkube.resources.core_v1 import Service

from stratus.kubernetes.names import dns_name, owner_labels
from stratus.kubernetes.target import Target

__all__ = ["INFERENCESERVICE", "SERVER_PORT", "ServeSpec", "inference_service_body", "render_serving"]

SERVER_PORT = 8000
INFERENCESERVICE = create_namespaced_resource(
    "serving.kserve.io", "v1beta1", "InferenceService", "inferenceservices"
)
_MODELS = "/models"


@dataclass(frozen=True)
class ServeSpec:
    """What to serve and how much of it: the model's name and file, replicas, per-replica size."""

    model: str
    file_name: str  # the ONNX file's name in the site's store, under models/
    min_replicas: int = 2
    max_replicas: int = 5
    cpus: float = 1.0
    memory_gb: float = 2.0
    target_cpu_percent: int = 70
    team: str | None = None
    project: str | None = None

    def model_uri(self, target: Target) -> str:
        """Where the site keeps its own copy of the model (``stratus serve`` copies it there)."""
        return f"{target.storage.rstrip('/')}/models/{self.file_name}"


def _labels(spec: ServeSpec, target: Target, name: str) -> tuple[dict[str, str], dict[str, str]]:
    labels = owner_labels(site=target.site, team=spec.team, project=spec.project)
    selector = {"app.kubernetes.io/name": name}
    return {**labels, **selector}, selector


def _resources(spec: ServeSpec) -> ResourceRequirements:
    memory = f"{spec.memory_gb:g}G"
    return ResourceRequirements(
        requests={"cpu": f"{spec.cpus:g}", "memory": memory}, limits={"memory": memory}
    )


def _pod(spec: ServeSpec, target: Target) -> PodSpec:
    local = f"{_MODELS}/{spec.file_name}"
    mount = [VolumeMount(name="models", mountPath=_MODELS)]
    health = HTTPGetAction(path="/v2/health/ready", port=SERVER_PORT)
    return PodSpec(
        initContainers=[
            Container(
                name="fetch-model",
                image=target.image,
                command=["python", "-m", "stratus.kubernetes.fetch", spec.model_uri(target), local],
                volumeMounts=mount,
            )
        ],
        containers=[
            Container(
                name="server",
                image=target.image,
                command=["python", "-m", "stratus.serving.server"],
                args=["--model", f"{spec.model}={local}", "--host", "0.0.0.0", "--port", str(SERVER_PORT)],
                ports=[ContainerPort(containerPort=SERVER_PORT, name="http")],
                readinessProbe=Probe(httpGet=health, periodSeconds=5),
                livenessProbe=Probe(
                    httpGet=HTTPGetAction(path="/v2/health/live", port=SERVER_PORT), periodSeconds=10
                ),
                resources=_resources(spec),
                volumeMounts=mount,
            )
        ],
        volumes=[Volume(name="models", emptyDir=EmptyDirVolumeSource())],
        terminationGracePeriodSeconds=30,  # the server drains for --drain-s (5 s) after SIGTERM
    )


def render_serving(spec: ServeSpec, target: Target) -> list[Any]:
    """Deployment, Service and HorizontalPodAutoscaler (CPU) for the model at ``target``."""
    name = dns_name("stratus-serve", spec.model)
    labels, selector = _labels(spec, target, name)
    meta = ObjectMeta(name=name, namespace=target.namespace, labels=labels)
    deployment = Deployment(
        metadata=meta,
        # No `replicas`: the autoscaler owns the count, and a re-apply must not reset what it (or
        # `stratus k8s scale`) set. It starts at the autoscaler's minimum.
        spec=DeploymentSpec(
            selector=LabelSelector(matchLabels=selector),
            template=PodTemplateSpec(metadata=ObjectMeta(labels=labels), spec=_pod(spec, target)),
        ),
    )
    service = Service(
        metadata=meta,
        spec=ServiceSpec(
            selector=selector, ports=[ServicePort(name="http", port=80, targetPort=SERVER_PORT)]
        ),
    )
    cpu = MetricTarget(type="Utilization", averageUtilization=spec.target_cpu_percent)
    hpa = HorizontalPodAutoscaler(
        metadata=meta,
        spec=HorizontalPodAutoscalerSpec(
            scaleTargetRef=CrossVersionObjectReference(apiVersion="apps/v1", kind="Deployment", name=name),
            minReplicas=spec.min_replicas,
            maxReplicas=spec.max_replicas,
            metrics=[MetricSpec(type="Resource", resource=ResourceMetricSource(name="cpu", target=cpu))],
        ),
    )
    return [deployment, service, hpa]


def inference_service_body(spec: ServeSpec, target: Target) -> dict[str, Any]:
    """The KServe InferenceService as a plain mapping (validated against KServe's own models)."""
    name = dns_name("stratus-kserve", spec.model)
    labels, _ = _labels(spec, target, name)
    memory = f"{spec.memory_gb:g}G"
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": target.namespace, "labels": labels},
        "spec": {
            "predictor": {
                "minReplicas": spec.min_replicas,
                "maxReplicas": spec.max_replicas,
                "model": {
                    "name": spec.model,
                    "modelFormat": {"name": "onnx"},
                    "protocolVersion": "v2",
                    "storageUri": spec.model_uri(target),
                    "resources": {
                        "requests": {"cpu": f"{spec.cpus:g}", "memory": memory},
                        "limits": {"memory": memory},
                    },
                },
            }
        },
    }


def render_inference_service(spec: ServeSpec, target: Target) -> NamespacedResource:
    """The InferenceService as a lightkube object, ready to apply."""
    return INFERENCESERVICE.from_dict(inference_service_body(spec, target))  # type: ignore[no-any-return]
