"""Talking to each site's context: server-side apply, prune by ownership, status, scale, delete.

One lightkube client per site, built from the site's kubeconfig and context, with a timeout on every
call. Everything Stratus writes goes through server-side apply with field manager ``stratus`` (so a
second apply of the same objects changes nothing, and fields a user set with ``kubectl`` are left to
them) and carries ``app.kubernetes.io/managed-by: stratus``; prune and delete only ever touch objects
with that label *and* the bundle's own label, checked again on the client side: a server that ignored
the selector must not make us delete someone else's objects.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from lightkube import ApiError, Client
from lightkube.codecs import from_dict
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ConfigError as LightkubeConfigError
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod, Service
from lightkube.types import CascadeType, PatchType

from stratus.errors import ConfigError
from stratus.kubernetes.crds import JOBSET, PYTORCHJOB, RAYCLUSTER
from stratus.kubernetes.errors import ClusterError
from stratus.kubernetes.names import FIELD_MANAGER, LABEL_BUNDLE, MANAGED_BY
from stratus.kubernetes.serving import INFERENCESERVICE
from stratus.kubernetes.target import Target
from stratus.kubernetes.validate import validate_objects

__all__ = [
    "REQUEST_TIMEOUT_S",
    "StatusRow",
    "apply_objects",
    "connect",
    "delete_owned",
    "guarded",
    "prune",
    "scale_deployment",
    "status_rows",
]

REQUEST_TIMEOUT_S = 30.0  # connect/read/write per call; watches set their own read timeout
_T = TypeVar("_T")

_OPERATOR_KINDS: dict[str, Any] = {
    "kuberay": RAYCLUSTER,
    "jobset": JOBSET,
    "training-operator": PYTORCHJOB,
    "kserve": INFERENCESERVICE,
}
_CORE_KINDS: tuple[Any, ...] = (Job, Service, Deployment, HorizontalPodAutoscaler)


def _kubeconfig_path(target: Target) -> Path:
    if target.kubeconfig:
        return Path(target.kubeconfig).expanduser()
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0]).expanduser()
    return Path("~/.kube/config").expanduser()


def connect(
    target: Target, *, read_timeout_s: float = REQUEST_TIMEOUT_S, watch_read_timeout_s: float | None = None
) -> Client:
    """A client for the site's context and namespace; a missing file or context is a config error.

    ``watch_read_timeout_s`` bounds every watch and followed log of this client (none by default:
    a followed log may be quiet for as long as its step likes).
    """
    path = _kubeconfig_path(target)
    field = f"sites.{target.site}.compute.kubeconfig"
    try:
        config = KubeConfig.from_file(path)
    except (OSError, LightkubeConfigError, ValueError) as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc}", field=field) from None
    if target.context not in (config.contexts or {}):
        known = ", ".join(sorted(config.contexts or {})) or "none"
        raise ConfigError(
            f"kubeconfig {path} has no context {target.context!r}; its contexts: {known}",
            field=f"sites.{target.site}.compute.context",
        )
    timeout = httpx2.Timeout(REQUEST_TIMEOUT_S, read=read_timeout_s)
    client = Client(
        config.get(context_name=target.context),
        namespace=target.namespace,
        field_manager=FIELD_MANAGER,
        timeout=timeout,
        trust_env=False,
    )
    if watch_read_timeout_s is not None:
        _bound_watches(client, httpx2.Timeout(REQUEST_TIMEOUT_S, read=watch_read_timeout_s))
    return client


def _bound_watches(client: Client, timeout: httpx2.Timeout) -> None:
    """Give the client's watches (and followed logs) a read timeout; lightkube sets none for them.

    A watch otherwise relies on the server honouring ``timeoutSeconds``: one that does not (a proxy, an
    emulator) or an event missed between a read and the watch's start would block the caller forever.
    lightkube keeps the setting in a private attribute; if a release moves it, this fails loudly.
    """
    inner = client._client  # lightkube's generic client; no public hook exists
    if not hasattr(inner, "_watch_timeout"):
        raise RuntimeError("this lightkube release keeps no _watch_timeout: the watch timeout cannot be set")
    inner._watch_timeout = timeout


def _what(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def guarded(target: Target, what: str, call: Callable[[], _T]) -> _T:
    """Run one API call; a refusal or an unreachable server becomes a ClusterError naming the context."""
    where = f"context {target.context} (site {target.site}), namespace {target.namespace}"
    try:
        return call()
    except ApiError as exc:
        status = exc.status
        reason = status.message or status.reason or str(exc.response.status_code)
        hint = ""
        if exc.response.status_code == 404 and what.startswith("apply"):
            hint = (
                f"; does namespace {target.namespace} exist (kubectl --context {target.context} create "
                "namespace ...), and is the kind's operator installed?"
            )
        raise ClusterError(f"{what} failed in {where}: {reason}{hint}") from None
    except httpx2.HTTPStatusError as exc:
        raise ClusterError(
            f"{what} failed in {where}: the API server answered HTTP {exc.response.status_code}"
        ) from None
    except httpx2.HTTPError as exc:
        raise ClusterError(f"{what} failed in {where}: cannot reach the API server: {exc}") from None


def apply_objects(client: Client, target: Target, objects: Sequence[dict[str, Any]]) -> list[str]:
    """Validate, then server-side apply each object (field manager ``stratus``, conflicts forced).

    Forcing takes ownership of fields another manager set on *our* objects, as ``kubectl apply
    --server-side --force-conflicts`` does; applying the same objects again changes nothing.
    """
    checked = validate_objects(list(objects), target.kubernetes_version)
    applied = []
    for obj in checked:
        resource = from_dict(obj)
        what = _what(obj)

        def call(resource: Any = resource) -> Any:
            return client.apply(resource, force=True)

        guarded(target, f"apply {what}", call)
        applied.append(what)
    return applied


def _kinds(target: Target) -> list[Any]:
    return [*_CORE_KINDS, *(_OPERATOR_KINDS[o] for o in sorted(target.operators) if o in _OPERATOR_KINDS)]


def _list(client: Client, target: Target, kind: Any, labels: dict[str, str] | None = None) -> list[Any]:
    """Objects of ``kind`` in the site's namespace; none when the kind is not served there (no CRD)."""

    def call() -> list[Any]:
        try:
            selector: dict[str, Any] | None = dict(labels) if labels else None
            return list(client.list(kind, namespace=target.namespace, labels=selector))
        except httpx2.HTTPStatusError as exc:  # ApiError, or a bare status when the body is no Status
            if exc.response.status_code == 404:
                return []
            raise

    return guarded(target, f"list {kind.__name__}", call)


def _owned(client: Client, target: Target, labels: dict[str, str]) -> Iterator[Any]:
    """Objects in the site's namespace carrying every one of ``labels`` (checked here as well)."""
    for kind in _kinds(target):
        for obj in _list(client, target, kind, labels):
            have = obj.metadata.labels or {}
            if all(have.get(key) == value for key, value in labels.items()):
                yield obj


def _ownership(bundle: str | None) -> dict[str, str]:
    labels = {MANAGED_BY: FIELD_MANAGER}
    if bundle:
        labels[LABEL_BUNDLE] = bundle
    return labels


def _delete(client: Client, target: Target, obj: Any) -> str:
    what = f"{obj.kind}/{obj.metadata.name}"
    guarded(
        target,
        f"delete {what}",
        lambda: client.delete(
            type(obj), obj.metadata.name, namespace=target.namespace, cascade=CascadeType.BACKGROUND
        ),
    )
    return what


def prune(client: Client, target: Target, bundle: str, keep: Sequence[dict[str, Any]]) -> list[str]:
    """Delete the bundle's objects at the site that ``keep`` no longer has (a removed step's Job)."""
    wanted = {(o["kind"], o["metadata"]["name"]) for o in keep}
    return [
        _delete(client, target, obj)
        for obj in list(_owned(client, target, _ownership(bundle)))
        if (obj.kind, obj.metadata.name) not in wanted
    ]


def delete_owned(client: Client, target: Target, bundle: str | None) -> list[str]:
    """Delete everything Stratus owns at the site (only ``bundle``'s when given)."""
    return [_delete(client, target, obj) for obj in list(_owned(client, target, _ownership(bundle)))]


def scale_deployment(client: Client, target: Target, name: str, replicas: int) -> None:
    """Set a Deployment's replicas through its scale subresource, as ``kubectl scale`` does."""
    body = {"spec": {"replicas": replicas}}
    guarded(
        target,
        f"scale Deployment/{name}",
        lambda: client.patch(
            Deployment.Scale, name, body, namespace=target.namespace, patch_type=PatchType.MERGE
        ),
    )


@dataclass(frozen=True)
class StatusRow:
    """One line of ``stratus k8s status``: an object, where it is, and how it is doing."""

    context: str
    site: str
    namespace: str
    kind: str
    name: str
    status: str
    detail: str = ""


def _pod_row(target: Target, pod: Any) -> StatusRow:
    status = pod.status
    phase = (status.phase if status else None) or "Unknown"
    statuses = (status.containerStatuses if status else None) or []
    ready = sum(1 for c in statuses if c.ready)
    restarts = sum(c.restartCount or 0 for c in statuses)
    detail = f"ready {ready}/{len(pod.spec.containers) if pod.spec else 0}, restarts {restarts}"
    return StatusRow(target.context, target.site, target.namespace, "Pod", pod.metadata.name, phase, detail)


def _job_row(target: Target, job: Any) -> StatusRow:
    status = job.status
    conditions = {c.type: c.status for c in (status.conditions or [])} if status else {}
    state = next(
        (kind for kind in ("Complete", "Failed", "Suspended") if conditions.get(kind) == "True"), "Running"
    )
    counts = (
        f"active {status.active or 0}, succeeded {status.succeeded or 0}, failed {status.failed or 0}"
        if status
        else ""
    )
    return StatusRow(target.context, target.site, target.namespace, "Job", job.metadata.name, state, counts)


def _deployment_row(target: Target, deployment: Any) -> StatusRow:
    status = deployment.status
    want = deployment.spec.replicas if deployment.spec and deployment.spec.replicas is not None else 1
    ready = (status.readyReplicas or 0) if status else 0
    state = "Available" if ready >= want else "Progressing"
    return StatusRow(
        target.context,
        target.site,
        target.namespace,
        "Deployment",
        deployment.metadata.name,
        state,
        f"ready {ready}/{want}",
    )


def status_rows(client: Client, target: Target) -> list[StatusRow]:
    """Pods, Jobs and Deployments in the site's namespace (everything there, as ``kubectl get`` shows)."""
    rows: list[StatusRow] = []
    for kind, row in ((Deployment, _deployment_row), (Job, _job_row), (Pod, _pod_row)):
        rows += [row(target, obj) for obj in _list(client, target, kind)]
    return rows
