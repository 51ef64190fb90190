"""Every object checked before it is written or applied: strict, offline, for the site's version.

Core objects go through ``kubernetes-validate`` (the official OpenAPI schemas of each Kubernetes minor
version, bundled; ``strict`` refuses any field the schema does not have). Objects of operators are
checked against the typed models their projects publish on PyPI where those exist:

- ``InferenceService``: KServe's own models (``kserve``); every key must be one of the model's fields,
  all the way down, including the embedded Kubernetes types (the ``kubernetes`` client's models).
- ``JobSet``: the models in ``kubeflow-trainer-api``; they silently drop unknown fields, so the object
  is re-serialised and any field that did not survive is an error.
- ``RayCluster`` (KubeRay) and ``PyTorchJob`` (Kubeflow Training): no published models usable here
  (KubeRay publishes none; ``kubeflow-training`` pins ``kubernetes<36``, which conflicts with KServe's).
  Their pod templates, most of the object, are checked strictly against the official PodTemplateSpec
  schema, and their own top-level fields against the names the operators' CRDs define.
"""

from __future__ import annotations

import datetime
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import kubernetes_validate
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, VersionNotSupportedError

from stratus.kubernetes.errors import ManifestError

__all__ = ["as_dict", "validate_object", "validate_objects"]

# The fields the operators' CRDs (KubeRay v1, Kubeflow Training v1) define at the levels we render.
_RAY_SPEC = {"headGroupSpec", "workerGroupSpecs", "enableInTreeAutoscaling", "rayVersion", "suspend"}
_RAY_HEAD = {"rayStartParams", "template", "serviceType", "enableIngress"}
_RAY_GROUP = {
    "groupName",
    "replicas",
    "minReplicas",
    "maxReplicas",
    "rayStartParams",
    "template",
    "numOfHosts",
}
_PYTORCH_SPEC = {"pytorchReplicaSpecs", "runPolicy", "elasticPolicy", "nprocPerNode"}
_PYTORCH_REPLICA = {"replicas", "restartPolicy", "template"}
_RUN_POLICY = {"backoffLimit", "activeDeadlineSeconds", "cleanPodPolicy", "ttlSecondsAfterFinished"}


def as_dict(obj: Any) -> dict[str, Any]:
    """A lightkube object (typed or generic) or a mapping, as the plain mapping the API receives."""
    if isinstance(obj, Mapping):
        return dict(obj)
    data = obj.to_dict()
    return dict(data)


def _where(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind', '?')} {meta.get('namespace', '-')}/{meta.get('name', '?')}"


def _fail(obj: Mapping[str, Any], path: str, reason: str) -> ManifestError:
    at = f" at {path}" if path else ""
    return ManifestError(f"{_where(obj)} does not validate{at}: {reason}")


def _official(data: Mapping[str, Any], version: str, owner: Mapping[str, Any], prefix: str = "") -> None:
    try:
        kubernetes_validate.validate(dict(data), version, strict=True)
    except VersionNotSupportedError:
        raise ManifestError(
            f"{_where(owner)}: no bundled schemas for Kubernetes {version}; set compute.kubernetes_version "
            f"to a version from 1.25 to {kubernetes_validate.latest_version()}"
        ) from None
    except ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path)
        raise _fail(owner, ".".join(p for p in (prefix, path) if p), exc.message) from None


def _pod_templates(node: Any, path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every ``template`` that holds a pod spec, with its dotted path."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key == "template" and isinstance(value, Mapping) and "containers" in (value.get("spec") or {}):
                yield here, value
            else:
                yield from _pod_templates(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _pod_templates(item, f"{path}[{index}]")


def _check_templates(obj: Mapping[str, Any], version: str) -> None:
    for path, template in _pod_templates(obj.get("spec") or {}, "spec"):
        wrapper = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}
        _official(wrapper, version, obj, prefix=path.removesuffix(".template").removesuffix("template"))


def _only(obj: Mapping[str, Any], node: Any, allowed: set[str], path: str) -> None:
    if not isinstance(node, Mapping):
        raise _fail(obj, path, f"expected a mapping, got {type(node).__name__}")
    unknown = sorted(set(node) - allowed)
    if unknown:
        raise _fail(
            obj, path, f"unknown field(s) {', '.join(unknown)}; expected some of {', '.join(sorted(allowed))}"
        )


def _raycluster(obj: Mapping[str, Any], version: str) -> None:
    spec = obj.get("spec") or {}
    _only(obj, spec, _RAY_SPEC, "spec")
    if "headGroupSpec" not in spec:
        raise _fail(obj, "spec", "a RayCluster needs headGroupSpec")
    _only(obj, spec["headGroupSpec"], _RAY_HEAD, "spec.headGroupSpec")
    for index, group in enumerate(spec.get("workerGroupSpecs") or []):
        _only(obj, group, _RAY_GROUP, f"spec.workerGroupSpecs[{index}]")
        if "groupName" not in group:
            raise _fail(obj, f"spec.workerGroupSpecs[{index}]", "a worker group needs groupName")
    _check_templates(obj, version)


def _pytorchjob(obj: Mapping[str, Any], version: str) -> None:
    spec = obj.get("spec") or {}
    _only(obj, spec, _PYTORCH_SPEC, "spec")
    _only(obj, spec.get("runPolicy") or {}, _RUN_POLICY, "spec.runPolicy")
    replicas = spec.get("pytorchReplicaSpecs") or {}
    if "Master" not in replicas:
        raise _fail(obj, "spec.pytorchReplicaSpecs", "a PyTorchJob needs a Master replica")
    for role, replica in replicas.items():
        _only(obj, replica, _PYTORCH_REPLICA, f"spec.pytorchReplicaSpecs.{role}")
    _check_templates(obj, version)


def _jobset(obj: Mapping[str, Any], version: str) -> None:
    from kubeflow_trainer_api.models.jobset_v1alpha2_job_set import JobsetV1alpha2JobSet
    from pydantic import ValidationError as PydanticError

    # The package types resource quantities as objects, not the strings the API takes, so it cannot
    # check a pod template: the JobSet's own fields go through its model, the templates through the
    # official PodTemplateSpec schema below.
    skeleton = _without_templates(obj)
    try:
        model = JobsetV1alpha2JobSet.model_validate(skeleton)
    except PydanticError as exc:
        first = exc.errors()[0]
        raise _fail(obj, ".".join(str(p) for p in first["loc"]), first["msg"]) from None
    kept = (
        model.to_dict() if hasattr(model, "to_dict") else model.model_dump(by_alias=True, exclude_none=True)
    )
    for path in _missing(skeleton, kept):
        raise _fail(obj, path, "not a field of JobSet (kubeflow-trainer-api's model dropped it)")
    _check_templates(obj, version)


def _without_templates(node: Any) -> Any:
    """``node`` with every pod template replaced by an empty one."""
    if isinstance(node, Mapping):
        return {
            key: {}
            if key == "template" and isinstance(value, Mapping) and "containers" in (value.get("spec") or {})
            else _without_templates(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_without_templates(item) for item in node]
    return node


def _missing(given: Any, kept: Any, path: str = "") -> Iterator[str]:
    """Paths present in ``given`` but absent from ``kept`` (what a lenient model dropped)."""
    if isinstance(given, Mapping):
        for key, value in given.items():
            here = f"{path}.{key}" if path else str(key)
            if not isinstance(kept, Mapping) or key not in kept:
                yield here
            else:
                yield from _missing(value, kept[key], here)
    elif isinstance(given, list) and isinstance(kept, list):
        for index, (a, b) in enumerate(zip(given, kept, strict=False)):
            yield from _missing(a, b, f"{path}[{index}]")


_PRIMITIVES: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "object": lambda v: True,
    "datetime": lambda v: isinstance(v, str | datetime.datetime),
    "date": lambda v: isinstance(v, str | datetime.date),
}


def _openapi_class(name: str) -> Any:
    for module in ("kserve.models", "kubernetes.client.models"):
        found = getattr(importlib.import_module(module), name, None)
        if found is not None:
            return found
    return None


def _typed(obj: Mapping[str, Any], value: Any, kind: str, path: str) -> None:
    """Check ``value`` against an OpenAPI-generated model type name, as KServe's client declares them."""
    if kind.lower().startswith("list["):
        if not isinstance(value, list):
            raise _fail(obj, path, f"expected a list ({kind})")
        for index, item in enumerate(value):
            _typed(obj, item, kind[5:-1], f"{path}[{index}]")
        return
    if kind.lower().startswith(("dict(", "dict[")):
        inner = kind[5:-1].split(",", 1)[1].strip()
        if not isinstance(value, Mapping):
            raise _fail(obj, path, f"expected a mapping ({kind})")
        for key, item in value.items():
            _typed(obj, item, inner, f"{path}.{key}")
        return
    if kind in _PRIMITIVES:
        if not _PRIMITIVES[kind](value):
            raise _fail(obj, path, f"expected {kind}, got {value!r}")
        return
    model = _openapi_class(kind)
    if model is None:
        raise _fail(obj, path, f"the model {kind} is not in KServe's or Kubernetes' client")
    if not isinstance(value, Mapping):
        raise _fail(obj, path, f"expected a mapping ({kind})")
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    for key, item in value.items():
        here = f"{path}.{key}" if path else str(key)
        if key not in by_json:
            raise _fail(obj, here, f"not a field of {kind}")
        _typed(obj, item, model.openapi_types[by_json[key]], here)


def _inference_service(obj: Mapping[str, Any], version: str) -> None:
    del version  # KServe's models are not per Kubernetes version
    try:
        importlib.import_module("kserve.models")
    except ImportError:
        raise ManifestError(
            f"{_where(obj)}: KServe's models are needed to check an InferenceService; "
            "install the kubernetes extra (pip install 'stratus[kubernetes]')"
        ) from None
    _typed(obj, obj, "V1beta1InferenceService", "")
    model = (((obj.get("spec") or {}).get("predictor") or {}).get("model")) or {}
    if model.get("protocolVersion") != "v2" or (model.get("modelFormat") or {}).get("name") != "onnx":
        raise _fail(obj, "spec.predictor.model", "expected protocolVersion v2 and modelFormat onnx")


_CRDS: dict[tuple[str, str], Callable[[Mapping[str, Any], str], None]] = {
    ("ray.io/v1", "RayCluster"): _raycluster,
    ("kubeflow.org/v1", "PyTorchJob"): _pytorchjob,
    ("jobset.x-k8s.io/v1alpha2", "JobSet"): _jobset,
    ("serving.kserve.io/v1beta1", "InferenceService"): _inference_service,
}


def validate_object(obj: Any, version: str) -> dict[str, Any]:
    """Validate one object for Kubernetes ``version`` (``1.33``); returns it as a mapping.

    Raises ManifestError naming the object, the field path and the schema's reason.
    """
    data = as_dict(obj)
    check = _CRDS.get((str(data.get("apiVersion")), str(data.get("kind"))))
    if check is not None:
        check(data, version)
        return data
    try:
        _official(data, version, data)
    except ManifestError:
        raise
    except SchemaNotFoundError:
        raise _fail(
            data, "", f"no schema for {data.get('apiVersion')} {data.get('kind')} in {version}"
        ) from None
    return data


def validate_objects(objects: list[Any], version: str) -> list[dict[str, Any]]:
    """Validate each object; the first failure is raised."""
    return [validate_object(obj, version) for obj in objects]
