"""What each provider's managed Kubernetes calls its nodes: spot capacity and accelerator models.

Spot: EKS labels spot nodes ``eks.amazonaws.com/capacityType: SPOT`` (no taint by default); GKE labels
and taints them ``cloud.google.com/gke-spot: "true"``; AKS spot pools carry
``kubernetes.azure.com/scalesetpriority: spot`` as label and ``NoSchedule`` taint. Accelerators are
requested as the device plugin's extended resource (``nvidia.com/gpu``, ``amd.com/gpu``,
``google.com/tpu``, ``aws.amazon.com/neuron``) and pinned to the model with the provider's node label.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stratus.resources import Accelerator

__all__ = ["NodeRequirements", "node_requirements"]


@dataclass(frozen=True)
class NodeRequirements:
    """What a pod needs on top of CPU and memory: extended resources, node labels, tolerated taints."""

    extended: dict[str, str] = field(default_factory=dict)  # resource name → count, as a string
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[tuple[str, str], ...] = ()  # (key, value), effect NoSchedule


_SPOT: dict[str, tuple[dict[str, str], tuple[tuple[str, str], ...]]] = {
    "aws": ({"eks.amazonaws.com/capacityType": "SPOT"}, ()),
    "gcp": ({"cloud.google.com/gke-spot": "true"}, (("cloud.google.com/gke-spot", "true"),)),
    "azure": (
        {"kubernetes.azure.com/scalesetpriority": "spot"},
        (("kubernetes.azure.com/scalesetpriority", "spot"),),
    ),
}

# GKE's node label values for the GPU models it offers; others fall back to nvidia-<name>.
_GKE_GPU = {
    "a100": "nvidia-tesla-a100",
    "a100-80gb": "nvidia-a100-80gb",
    "h100": "nvidia-h100-80gb",
    "h200": "nvidia-h200-141gb",
    "l4": "nvidia-l4",
    "t4": "nvidia-tesla-t4",
    "v100": "nvidia-tesla-v100",
    "p100": "nvidia-tesla-p100",
}


def _extended_resource(name: str) -> str:
    lowered = name.lower()
    if lowered.startswith(("tpu", "v4", "v5", "v6")):
        return "google.com/tpu"
    if lowered.startswith(("trainium", "inferentia", "trn", "inf")):
        return "aws.amazon.com/neuron"
    if lowered.startswith("mi"):
        return "amd.com/gpu"
    return "nvidia.com/gpu"


def _model_label(provider: str, accelerator: Accelerator, resource: str) -> dict[str, str]:
    name = accelerator.name.lower()
    if resource == "google.com/tpu":
        return {"cloud.google.com/gke-tpu-accelerator": name} if provider == "gcp" else {}
    if provider == "gcp":
        return {"cloud.google.com/gke-accelerator": _GKE_GPU.get(name, f"nvidia-{name}")}
    if provider == "aws":
        return {"eks.amazonaws.com/instance-gpu-name": name}
    if provider == "azure":
        return {"kubernetes.azure.com/accelerator": "nvidia"} if resource == "nvidia.com/gpu" else {}
    if resource == "nvidia.com/gpu":  # on-prem: NVIDIA GPU feature discovery's product label
        return {"nvidia.com/gpu.product": f"NVIDIA-{accelerator.name.upper()}"}
    return {}


def node_requirements(provider: str, accelerator: Accelerator | None, spot: bool) -> NodeRequirements:
    """The extended resources, node selector and tolerations for a pod at ``provider``.

    Spot at a provider with no spot convention (on-prem, local) asks for nothing: every node there is
    what it is, and an unknown selector would leave the pod Pending forever.
    """
    extended: dict[str, str] = {}
    selector: dict[str, str] = {}
    tolerations: tuple[tuple[str, str], ...] = ()
    if accelerator is not None:
        resource = _extended_resource(accelerator.name)
        extended[resource] = str(accelerator.count)  # quantities as strings: clients reject bare ints
        selector.update(_model_label(provider, accelerator, resource))
    if spot and provider in _SPOT:
        spot_selector, tolerations = _SPOT[provider]
        selector.update(spot_selector)
    return NodeRequirements(extended, selector, tolerations)
