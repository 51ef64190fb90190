"""A planned pipeline in the terms every workflow engine shares: tasks, artifact edges, pods; pure.

``stratus export kfp`` and ``stratus export argo`` both start here, so the two files say the same thing:
one task per step (and one per dataset a ``make:`` function builds), each running the step's worker in
the image of the site the plan put it at, pinned to that site's nodes by the plan's placement (region,
accelerator model, spot capacity: :mod:`stratus.kubernetes.nodes`, as ``stratus k8s render`` pins them).
What the engines cannot say is not here: :mod:`stratus.export.gaps` lists it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stratus.config import (
    Pipeline,
    Platform,
    Resources,
    parse_input,
    step_dependencies,
    topological_order,
)
from stratus.errors import ConfigError
from stratus.kubernetes.names import LABEL_SITE, label_value
from stratus.kubernetes.nodes import node_requirements
from stratus.planner import Plan

__all__ = [
    "REGION_LABEL",
    "ExportSpec",
    "Input",
    "SecretEnv",
    "Task",
    "build_spec",
    "identifier",
    "parse_secret",
]

#: The well-known node label every managed Kubernetes sets to the node's cloud region.
REGION_LABEL = "topology.kubernetes.io/region"
_CLOUDS = frozenset({"aws", "gcp", "azure"})
_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]+")
_SECRET = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?):([-._A-Za-z0-9]+)=([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class SecretEnv:
    """One environment variable every step gets from a key of a Kubernetes Secret."""

    secret: str
    key: str
    env: str


@dataclass(frozen=True)
class Input:
    """One artifact a task reads: its name in the task, the Stratus ref, and who makes it.

    ``producer`` is None for a dataset no task makes (a pipeline input the submitter supplies).
    ``site`` is set only for a federated step's inputs: the participant whose data it is.
    """

    name: str
    ref: str
    producer: str | None
    output: str
    site: str | None = None


@dataclass(frozen=True)
class Task:
    """One container in the workflow: what it runs, what it reads and writes, and where it may run."""

    name: str  # an identifier, unique in the pipeline
    ref: str  # the step's name, or "dataset:NAME" for a task that makes a dataset
    site: str
    image: str
    entrypoint: str
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...]
    params: Mapping[str, Any]
    resources: Resources
    accelerator: tuple[str, int] | None  # extended resource name, count
    node_selector: Mapping[str, str]
    tolerations: tuple[tuple[str, str], ...]  # (key, value), effect NoSchedule
    retries: int
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def after(self) -> tuple[str, ...]:
        """The tasks whose outputs this one reads, in first-read order."""
        return tuple(dict.fromkeys(i.producer for i in self.inputs if i.producer is not None))


@dataclass(frozen=True)
class ExportSpec:
    """The pipeline's tasks in dependency order, and the datasets the submitter must supply."""

    name: str
    tasks: tuple[Task, ...]
    dataset_inputs: tuple[str, ...]  # datasets with no `make:`: pipeline inputs
    secrets: tuple[SecretEnv, ...] = ()

    def task(self, name: str) -> Task:
        """The task called ``name``; KeyError when there is none."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)


def parse_secret(value: str) -> SecretEnv:
    """``SECRET:KEY=ENV`` (a ``--secret`` flag) as a :class:`SecretEnv`; anything else is exit 2."""
    match = _SECRET.match(value)
    if match is None:
        raise ConfigError(
            f"{value!r} is not SECRET:KEY=ENV (a Kubernetes Secret's name, one of its keys, and the "
            "environment variable the steps read it from), e.g. fraud-db:dsn=FRAUD_DB_DSN",
            field="--secret",
        )
    return SecretEnv(secret=match[1], key=match[3], env=match[4])


def identifier(text: str) -> str:
    """``text`` as a Python identifier (what KFP requires of input and output names)."""
    folded = _NOT_IDENTIFIER.sub("_", text).strip("_") or "x"
    return f"_{folded}" if folded[0].isdigit() else folded


def _image(platform: Platform, site: str, fallback: str | None, task: str) -> str:
    image = platform.sites[site].compute.image or fallback
    if image is None:
        raise ConfigError(
            f"{task} is placed at site {site!r}, which has no compute.image (it is not a Kubernetes "
            "site); pass --image REGISTRY/IMAGE:TAG (an image with stratus and the steps' code) or give "
            "the site an image",
            field="--image",
        )
    return image


def _pinning(
    provider: str, region: str, site: str, resources: Resources, spot: bool, placement: bool
) -> tuple[tuple[str, int] | None, dict[str, str], tuple[tuple[str, str], ...]]:
    """Accelerator, node selector and tolerations: the plan's site as the nodes that stand for it."""
    needs = node_requirements(provider, resources.accelerators, spot)
    accelerator = next(((name, int(count)) for name, count in needs.extended.items()), None)
    selector = dict(needs.node_selector)
    if placement:
        if provider in _CLOUDS:
            selector[REGION_LABEL] = region
        else:  # an on-prem room has no well-known label: its nodes carry the site's name
            selector[LABEL_SITE] = label_value(site)
    return accelerator, selector, needs.tolerations


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


def build_spec(
    pipeline: Pipeline,
    platform: Platform,
    plan: Plan,
    *,
    image: str | None = None,
    secrets: Sequence[SecretEnv] = (),
    placement: bool = True,
) -> ExportSpec:
    """Every step (and every made dataset) as a task at its planned site, in dependency order.

    A distributed step becomes its rank 0 at the coordinator and a federated step one task at the
    coordinator holding every participant's data (how ``stratus run`` runs it too); what that loses is
    in :func:`stratus.export.gaps.find_gaps`.
    """
    taken: set[str] = set()
    step_names = {name: _unique(identifier(name), taken) for name in pipeline.steps}
    made: dict[str, str] = {}  # dataset → the task that makes it
    tasks: list[Task] = []
    for name, spec in pipeline.datasets.items():
        if spec.make is None:
            continue
        task = _unique(f"make_{identifier(name)}", taken)
        made[name] = task
        home = platform.sites[spec.site]
        accelerator, selector, tolerations = _pinning(
            home.provider, home.region, spec.site, Resources(), False, placement
        )
        tasks.append(
            Task(
                name=task,
                ref=f"dataset:{name}",
                site=spec.site,
                image=_image(platform, spec.site, image, f"dataset {name!r} (make: {spec.make})"),
                entrypoint=spec.make,
                inputs=(),
                outputs=(name,),
                params=dict(spec.params),
                resources=Resources(),
                accelerator=accelerator,
                node_selector=selector,
                tolerations=tolerations,
                retries=1,  # the runner makes a dataset twice at most
            )
        )
    deps = step_dependencies({name: step.inputs for name, step in pipeline.steps.items()})
    for step_name in topological_order(deps):
        step = pipeline.steps[step_name]
        where = plan.placement(step_name)
        inputs: list[Input] = []
        names = {identifier(output) for output in step.outputs}  # KFP: one namespace for both
        for ref in step.inputs:
            producer, item = parse_input(ref)
            owner = None  # a federated step's participant: the site whose data this is
            if producer is None:
                owner = pipeline.datasets[item].site if step.kind == "federated" else None
                source = made.get(item)
            else:
                source = step_names[producer]
            local = _unique(identifier(ref.replace("dataset:", "")), names)
            inputs.append(Input(name=local, ref=ref, producer=source, output=item, site=owner))
        accelerator, selector, tolerations = _pinning(
            where.provider, where.region, where.site, step.resources, where.pricing == "spot", placement
        )
        tasks.append(
            Task(
                name=step_names[step_name],
                ref=step_name,
                site=where.site,
                image=_image(platform, where.site, image, f"step {step_name!r}"),
                entrypoint=step.run,
                inputs=tuple(inputs),
                outputs=tuple(step.outputs),
                params=dict(step.params),
                resources=step.resources,
                accelerator=accelerator,
                node_selector=selector,
                tolerations=tolerations,
                retries=step.max_attempts - 1,
            )
        )
    missing = tuple(n for n in pipeline.datasets if n not in made)
    return ExportSpec(name=pipeline.name, tasks=tuple(tasks), dataset_inputs=missing, secrets=tuple(secrets))
