"""A pipeline or a model across every Kubernetes context of the platform, as validated YAML on disk.

``stratus k8s render`` writes one folder per site (``DIR/<site>/``) holding one file per object, so
``kubectl --context aws apply -f DIR/aws-eu`` applies a site's share (no ``kustomization.yaml`` there:
``kubectl apply -f`` would refuse it as an unknown kind). Every object is validated for the site's
Kubernetes version before anything is written: a folder on disk is always complete and valid.

A rendered step runs the same worker as ``stratus run`` does, with its request in the pod's environment
and its inputs and outputs on the site's work volume (``compute.work_claim``) under
``/stratus/runs/<run>/``; this module does not plan, so it renders each step for every Kubernetes site
its constraints allow, and ``stratus plan`` says which of them a run would use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stratus.config import Pipeline, Resources, Step
from stratus.executors.base import StepRequest
from stratus.executors.process import worker_payload
from stratus.kubernetes.crds import render_jobset, render_pytorchjob, render_raycluster
from stratus.kubernetes.names import LABEL_BUNDLE, dns_name, label_value
from stratus.kubernetes.render import Workload, render_indexed_job, render_job, worker_command
from stratus.kubernetes.serving import ServeSpec, render_inference_service, render_serving
from stratus.kubernetes.target import Target
from stratus.kubernetes.validate import as_dict, validate_objects

__all__ = ["WORK_ROOT", "Bundle", "pipeline_bundle", "serving_bundle", "step_objects", "write_bundle"]

WORK_ROOT = Path("/stratus/runs")


@dataclass
class Bundle:
    """Validated objects per site, and what was left out and why (shown to the user)."""

    name: str
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _allowed(step: Step, target: Target) -> str | None:
    """Why ``step`` may not run at ``target`` (None when it may)."""
    rules = step.constraints
    if rules.backends and "kubernetes" not in rules.backends:
        return f"constraints.backends is {', '.join(rules.backends)}"
    if rules.sites and target.site not in rules.sites:
        return f"constraints.sites excludes {target.site}"
    if rules.providers and target.provider not in rules.providers:
        return f"constraints.providers excludes {target.provider}"
    if step.kind == "federated":
        return "federated steps run one participant per data site (stratus run)"
    return None


def _request(pipeline: Pipeline, name: str, step: Step, run_id: str) -> StepRequest:
    run = WORK_ROOT / run_id
    inputs = {}
    for ref in step.inputs:
        if ref.startswith("dataset:"):
            inputs[ref] = run / "datasets" / ref.split(":", 1)[1]
        else:
            producer, output = ref.split(".", 1)
            inputs[ref] = run / producer / "outputs" / output
    return StepRequest(
        run_id=run_id,
        step=name,
        entrypoint=step.run,
        inputs=inputs,
        outputs={out: run / name / "outputs" / out for out in step.outputs},
        workdir=run / name,
        params=dict(step.params),
    )


def step_objects(work: Workload, target: Target, step: Step, world_size: int) -> list[Any]:
    """The objects of one step at one site: a Job, or a distributed step's group in the site's terms."""
    if step.kind != "distributed":
        return [render_job(work, target)]
    if "jobset" in target.operators:
        return [render_jobset(work, target, world_size)]
    if "training-operator" in target.operators:
        return [render_pytorchjob(work, target, world_size)]
    return list(render_indexed_job(work, target, world_size))


def _world_size(step: Step) -> int:
    if isinstance(step.sites, list):
        return len(step.sites)
    return step.sites or 1


def pipeline_bundle(pipeline: Pipeline, targets: Sequence[Target], run_id: str) -> Bundle:
    """Every step of ``pipeline`` for every target it may run at, plus a RayCluster where KubeRay runs."""
    bundle = Bundle(name=label_value(f"pipeline-{pipeline.name}"))
    team, project = pipeline.tags.get("team"), pipeline.tags.get("project", pipeline.name)
    for target in targets:
        objects: list[Any] = []
        for name, step in pipeline.steps.items():
            why = _allowed(step, target)
            if why is not None:
                bundle.skipped.append(f"{name} at {target.site}: {why}")
                continue
            command, env = worker_command(worker_payload(_request(pipeline, name, step, run_id)))
            work = Workload(
                run_id=run_id,
                step=name,
                command=command,
                env=env,
                resources=step.resources,
                spot=step.spot,
                max_attempts=step.max_attempts,
                retry_on_error=step.retry_on_error,
                timeout_s=None,
                team=team,
                project=project,
                work_path=str(WORK_ROOT),
            )
            objects += step_objects(work, target, step, _world_size(step))
        if "kuberay" in target.operators:
            biggest = max(
                (s.resources for s in pipeline.steps.values()),
                key=lambda r: (r.cpus, r.memory_gb),
                default=Resources(),
            )
            name = dns_name("stratus-ray", pipeline.name)
            worker = Resources(cpus=biggest.cpus, memory_gb=biggest.memory_gb)
            objects.append(
                render_raycluster(target, name=name, worker=worker, workers=2, team=team, project=project)
            )
        bundle.objects[target.site] = validate_objects(
            _tagged(objects, bundle.name), target.kubernetes_version
        )
    return bundle


def serving_bundle(spec: ServeSpec, targets: Sequence[Target]) -> Bundle:
    """The model served at every target: KServe where it runs, else our server with an autoscaler."""
    bundle = Bundle(name=label_value(f"serve-{spec.model}"))
    for target in targets:
        if "kserve" in target.operators:
            objects: list[Any] = [render_inference_service(spec, target)]
        else:
            objects = render_serving(spec, target)
        bundle.objects[target.site] = validate_objects(
            _tagged(objects, bundle.name), target.kubernetes_version
        )
    return bundle


def _tagged(objects: list[Any], bundle: str) -> list[dict[str, Any]]:
    """The objects as mappings, each labelled with the bundle it belongs to (what prune compares)."""
    tagged = []
    for obj in objects:
        data = as_dict(obj)
        labels = data.setdefault("metadata", {}).setdefault("labels", {})
        labels[LABEL_BUNDLE] = bundle
        tagged.append(data)
    return tagged


def write_bundle(bundle: Bundle, out: Path) -> list[Path]:
    """Write each site's objects under ``out/<site>/``, one file each; returns the files written."""
    written: list[Path] = []
    for site, objects in bundle.objects.items():
        folder = out / site
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.yaml"):  # a re-render must not leave a removed step's Job behind
            stale.unlink()
        for index, obj in enumerate(objects):
            file = f"{index:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
            (folder / file).write_text(yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")
            written.append(folder / file)
    return written
