"""An :class:`~stratus.export.spec.ExportSpec` compiled by the Kubeflow Pipelines SDK to its IR YAML.

Nothing here writes IR: each task becomes a ``@dsl.container_component`` (built with the signature its
inputs and outputs need: artifacts in, artifacts out), the pipeline function calls them in dependency
order, and ``kfp.compiler.Compiler`` writes the file. Resources and accelerators are the task's own
settings (``set_cpu_request``, ``set_accelerator_type`` with the device plugin's resource name);
node selectors, spot tolerations and secrets go through ``kfp-kubernetes`` into the platform spec.
A dataset no task makes is a pipeline parameter ``<dataset>_uri`` fed to ``dsl.importer``.

``kfp`` is the optional extra ``stratus[kfp]``; it is imported only when this module's function runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stratus.errors import ConfigError
from stratus.export.contract import container, task_env
from stratus.export.spec import ExportSpec, Task, identifier
from stratus.kubernetes.names import dns_name

__all__ = ["compile_kfp", "dataset_parameter"]

_POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD


def dataset_parameter(dataset: str) -> str:
    """The pipeline parameter that names a supplied dataset's URI."""
    return f"{identifier(dataset)}_uri"


def _kfp() -> tuple[Any, Any, Any]:
    try:
        from kfp import compiler, dsl, kubernetes
    except ImportError as exc:
        raise ConfigError(
            f"the Kubeflow Pipelines SDK is not installed ({exc}); install it with "
            "pip install 'stratus[kfp]' (kfp 2.17.3 and kfp-kubernetes)",
            field="stratus export kfp",
        ) from exc
    return compiler, dsl, kubernetes


def _with_signature(body: Callable[..., Any], name: str, doc: str, params: list[inspect.Parameter]) -> Any:
    """``body`` as a function the SDK can read: KFP builds the component from its signature."""
    body.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    body.__name__ = name
    body.__qualname__ = name
    body.__doc__ = doc
    return body


def _component(task: Task, dsl: Any) -> Any:
    outputs = {name: identifier(name) for name in task.outputs}
    params = [inspect.Parameter(i.name, _POSITIONAL, annotation=dsl.Input[dsl.Artifact]) for i in task.inputs]
    params += [
        inspect.Parameter(o, _POSITIONAL, annotation=dsl.Output[dsl.Artifact]) for o in outputs.values()
    ]
    names = [p.name for p in params]

    def body(*args: Any) -> Any:
        values = dict(zip(names, args, strict=True))
        command, arguments = container(
            task,
            dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            {i.name: str(values[i.name].path) for i in task.inputs},
            {name: str(values[param].path) for name, param in outputs.items()},
        )
        return dsl.ContainerSpec(image=task.image, command=command, args=arguments)

    doc = f"Stratus {task.ref} ({task.entrypoint}), placed at site {task.site}."
    return dsl.container_component(_with_signature(body, task.name, doc, params))


def _configure(step: Any, task: Task, spec: ExportSpec, kubernetes: Any) -> None:
    """Resources, accelerator, retries, env; placement and secrets through kfp-kubernetes."""
    step.set_display_name(task.ref)
    step.set_cpu_request(f"{task.resources.cpus:g}")
    memory = f"{task.resources.memory_gb:g}G"
    step.set_memory_request(memory)
    step.set_memory_limit(memory)  # as `stratus k8s render`: memory is a hard limit, CPU is not
    if task.accelerator is not None:
        resource, count = task.accelerator
        step.set_accelerator_type(resource)
        step.set_accelerator_limit(count)
    if task.retries > 0:
        step.set_retry(num_retries=task.retries, backoff_duration="30s", backoff_factor=2.0)
    for key, value in sorted(task_env(task).items()):
        step.set_env_variable(key, value)
    for key, value in sorted(task.node_selector.items()):
        kubernetes.add_node_selector(step, label_key=key, label_value=value)
    for key, value in task.tolerations:
        kubernetes.add_toleration(step, key=key, operator="Equal", value=value, effect="NoSchedule")
    for secret in spec.secrets:
        kubernetes.use_secret_as_env(
            step, secret_name=secret.secret, secret_key_to_env={secret.key: secret.env}
        )


def compile_kfp(spec: ExportSpec, out: Path) -> None:
    """Compile ``spec`` with the KFP SDK into the IR YAML file ``out``."""
    compiler, dsl, kubernetes = _kfp()
    components = {task.name: _component(task, dsl) for task in spec.tasks}
    uris = [dataset_parameter(d) for d in spec.dataset_inputs]

    def pipeline(*args: Any) -> None:
        produced: dict[tuple[str | None, str], Any] = {}
        for dataset, uri in zip(spec.dataset_inputs, args, strict=True):
            imported = dsl.importer(artifact_uri=uri, artifact_class=dsl.Artifact, reimport=False)
            imported.set_display_name(f"dataset:{dataset}")
            produced[(None, dataset)] = imported.output
        for task in spec.tasks:
            step = components[task.name](**{i.name: produced[(i.producer, i.output)] for i in task.inputs})
            _configure(step, task, spec, kubernetes)
            for name in task.outputs:
                produced[(task.name, name)] = step.outputs[identifier(name)]

    params = [inspect.Parameter(u, _POSITIONAL, annotation=str) for u in uris]
    doc = f"Stratus pipeline {spec.name}, exported from its plan (stratus export kfp)."
    function = _with_signature(pipeline, identifier(spec.name), doc, params)
    compiled = dsl.pipeline(name=dns_name(spec.name), description=doc)(function)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=compiled, package_path=str(out))
