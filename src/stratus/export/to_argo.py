"""An :class:`~stratus.export.spec.ExportSpec` as an Argo Workflows ``Workflow``, built with hera.

One container template per task (the same contract as the KFP export: :mod:`stratus.export.contract`),
and one DAG template, the entry point, whose tasks depend on the tasks whose artifacts they read. Argo
lets a template choose where its artifacts live, so inputs are at ``/stratus/inputs/<name>`` and outputs
at ``/stratus/outputs/<name>`` in the container. A dataset no task makes is an input artifact of the
workflow (``spec.arguments.artifacts``): give it a location (s3, gcs, http) before submitting.

The YAML is hera's own; :func:`check_workflow` reads it back through hera's model of Argo's schema.
``hera`` is the optional extra ``stratus[argo]``, imported only when these functions run.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from stratus.errors import ConfigError
from stratus.export.contract import container, task_env
from stratus.export.spec import ExportSpec, Input, Task
from stratus.kubernetes.names import (
    FIELD_MANAGER,
    LABEL_PROJECT,
    LABEL_SITE,
    LABEL_STEP,
    MANAGED_BY,
    dns_name,
    label_value,
)

__all__ = ["ENTRYPOINT", "INPUT_ROOT", "OUTPUT_ROOT", "argo_name", "build_workflow", "check_workflow"]

ENTRYPOINT = "pipeline"
INPUT_ROOT = "/stratus/inputs"
OUTPUT_ROOT = "/stratus/outputs"
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


def argo_name(name: str) -> str:
    """A task or template name as Argo accepts it (DNS label characters; tasks take no ``_``)."""
    return _NOT_NAME.sub("-", name.lower()).strip("-") or "x"


def _hera() -> Any:
    try:
        import hera.workflows as hera
    except ImportError as exc:
        raise ConfigError(
            f"hera (the Argo Workflows SDK) is not installed ({exc}); install it with "
            "pip install 'stratus[argo]'",
            field="stratus export argo",
        ) from exc
    return hera


def _template(task: Task, spec: ExportSpec, hera: Any) -> Any:
    inputs = {i.name: f"{INPUT_ROOT}/{i.name}" for i in task.inputs}
    outputs = {name: f"{OUTPUT_ROOT}/{argo_name(name)}" for name in task.outputs}
    command, args = container(task, "{{workflow.uid}}", inputs, outputs)
    env: list[Any] = [hera.Env(name=k, value=v) for k, v in sorted(task_env(task).items())]
    env += [hera.SecretEnv(name=s.env, secret_name=s.secret, secret_key=s.key) for s in spec.secrets]
    # The same quantities as `stratus k8s render` (decimal G: hera's helper takes binary units only);
    # memory is a hard limit, CPU is not.
    memory = f"{task.resources.memory_gb:g}G"
    extended = {task.accelerator[0]: str(task.accelerator[1])} if task.accelerator else {}
    resources = hera.models.ResourceRequirements(
        requests={"cpu": f"{task.resources.cpus:g}", "memory": memory, **extended},
        limits={"memory": memory, **extended},
    )
    tolerations = [
        hera.models.Toleration(key=key, operator="Equal", value=value, effect="NoSchedule")
        for key, value in task.tolerations
    ]
    return hera.Container(
        name=argo_name(task.name),
        image=task.image,
        command=command,
        args=args,
        env=env,
        resources=resources,
        node_selector=dict(task.node_selector) or None,
        tolerations=tolerations or None,
        inputs=[hera.Artifact(name=name, path=path) for name, path in inputs.items()] or None,
        outputs=[hera.Artifact(name=argo_name(n), path=p) for n, p in outputs.items()] or None,
        retry_strategy=hera.RetryStrategy(limit=task.retries) if task.retries > 0 else None,
        labels={LABEL_STEP: label_value(task.ref), LABEL_SITE: label_value(task.site)},
    )


def _source(item: Input) -> str:
    if item.producer is None:
        return f"{{{{inputs.artifacts.{argo_name(item.output)}}}}}"
    return f"{{{{tasks.{argo_name(item.producer)}.outputs.artifacts.{argo_name(item.output)}}}}}"


def build_workflow(spec: ExportSpec) -> str:
    """The workflow as YAML: container templates, and the DAG that runs them in dependency order."""
    hera = _hera()
    supplied = [argo_name(d) for d in spec.dataset_inputs]
    with hera.Workflow(
        generate_name=f"{dns_name(spec.name, limit=50)}-",
        entrypoint=ENTRYPOINT,
        arguments=[hera.Artifact(name=d) for d in supplied] or None,
        labels={MANAGED_BY: FIELD_MANAGER, LABEL_PROJECT: label_value(spec.name)},
    ) as workflow:
        templates = {task.name: _template(task, spec, hera) for task in spec.tasks}
        with hera.DAG(name=ENTRYPOINT, inputs=[hera.Artifact(name=d) for d in supplied] or None):
            for task in spec.tasks:
                hera.Task(
                    name=argo_name(task.name),
                    template=templates[task.name],
                    arguments=[hera.Artifact(name=i.name, from_=_source(i)) for i in task.inputs] or None,
                    dependencies=[argo_name(p) for p in task.after] or None,
                )
    text: str = workflow.to_yaml()
    check_workflow(text)
    return text


def check_workflow(text: str) -> Any:
    """``text`` read back through hera's Workflow model (Argo's schema); a mismatch raises."""
    hera = _hera()
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or data.get("kind") != "Workflow":
        raise ValueError("not an Argo Workflow document")
    return hera.Workflow.from_dict(data)
