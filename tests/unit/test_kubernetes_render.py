"""Rendering and strict validation of every kind of Kubernetes object Stratus writes (pure, no server)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stratus.config import Resources, load_pipeline, load_platform
from stratus.errors import ConfigError
from stratus.kubernetes.bundle import pipeline_bundle, serving_bundle, write_bundle
from stratus.kubernetes.crds import render_jobset, render_pytorchjob, render_raycluster
from stratus.kubernetes.errors import ManifestError
from stratus.kubernetes.names import dns_name, label_value
from stratus.kubernetes.render import Workload, render_indexed_job, render_job, worker_command
from stratus.kubernetes.serving import ServeSpec, inference_service_body, render_serving
from stratus.kubernetes.target import Target, kubernetes_targets
from stratus.kubernetes.validate import as_dict, validate_object

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud-detection"


def target(provider: str = "aws", **extra: Any) -> Target:
    fields: dict[str, Any] = {
        "site": f"{provider}-site",
        "provider": provider,
        "context": provider,
        "namespace": "ml-pipeline",
        "image": "registry.example.com/stratus:1",
        "kubernetes_version": "1.33",
        "work_claim": "stratus-work",
        "storage": "s3://bucket/prefix",
    }
    return Target(**{**fields, **extra})


def work(**extra: Any) -> Workload:
    command, env = worker_command({"step": "train"})
    fields: dict[str, Any] = {
        "run_id": "run-1",
        "step": "train",
        "command": command,
        "env": env,
        "resources": Resources(cpus=4, memory_gb=16, accelerators="A100:2"),
        "max_attempts": 3,
        "timeout_s": 3599.5,
        "team": "risk-ml",
        "project": "fraud",
        "work_path": "/stratus/runs",
    }
    return Workload(**{**fields, **extra})


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_a_step_is_a_job_with_attempts_deadline_resources_and_owner_and_cost_labels() -> None:
    job = validate_object(render_job(work(), target()), "1.33")
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (2, 3600)
    container = pod(job)["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "4", "memory": "16G", "nvidia.com/gpu": "2"},
        "limits": {"memory": "16G", "nvidia.com/gpu": "2"},
    }
    assert isinstance(container["resources"]["limits"]["nvidia.com/gpu"], str)
    labels = job["metadata"]["labels"]
    assert {
        k: labels[k] for k in ("stratus.io/run", "stratus.io/step", "stratus.io/team", "stratus.io/project")
    } == {
        "stratus.io/run": "run-1",
        "stratus.io/step": "train",
        "stratus.io/team": "risk-ml",
        "stratus.io/project": "fraud",
    }
    # Kubecost's default aggregation labels (OpenCost allocates by any label).
    assert (labels["team"], labels["owner"], labels["product"], labels["app"]) == (
        "risk-ml",
        "risk-ml",
        "fraud",
        "stratus",
    )
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert pod(job)["volumes"] == [{"name": "work", "persistentVolumeClaim": {"claimName": "stratus-work"}}]


def test_the_pod_failure_policy_ignores_disruptions_and_fails_fast_on_the_steps_own_errors() -> None:
    rules = validate_object(render_job(work(), target()), "1.33")["spec"]["podFailurePolicy"]["rules"]
    assert rules == [
        {"action": "Ignore", "onPodConditions": [{"status": "True", "type": "DisruptionTarget"}]},
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "step", "operator": "In", "values": [1, 2, 3]},
        },
    ]
    retried = validate_object(render_job(work(retry_on_error=True), target()), "1.33")
    assert [r["action"] for r in retried["spec"]["podFailurePolicy"]["rules"]] == ["Ignore"]


@pytest.mark.parametrize(
    ("provider", "selector", "tolerations"),
    [
        (
            "aws",
            {"eks.amazonaws.com/capacityType": "SPOT", "eks.amazonaws.com/instance-gpu-name": "a100"},
            None,
        ),
        (
            "gcp",
            {"cloud.google.com/gke-spot": "true", "cloud.google.com/gke-accelerator": "nvidia-tesla-a100"},
            [
                {
                    "effect": "NoSchedule",
                    "key": "cloud.google.com/gke-spot",
                    "operator": "Equal",
                    "value": "true",
                }
            ],
        ),
        (
            "azure",
            {"kubernetes.azure.com/scalesetpriority": "spot", "kubernetes.azure.com/accelerator": "nvidia"},
            [
                {
                    "effect": "NoSchedule",
                    "key": "kubernetes.azure.com/scalesetpriority",
                    "operator": "Equal",
                    "value": "spot",
                }
            ],
        ),
        ("onprem", {"nvidia.com/gpu.product": "NVIDIA-A100"}, None),
    ],
)
def test_spot_and_accelerators_use_each_providers_node_labels_and_taints(
    provider: str, selector: dict[str, str], tolerations: list[dict[str, str]] | None
) -> None:
    spec = pod(validate_object(render_job(work(spot=True), target(provider)), "1.33"))
    assert spec["nodeSelector"] == selector
    assert spec.get("tolerations") == tolerations


def test_a_cpu_step_on_demand_asks_for_no_special_nodes() -> None:
    spec = pod(
        validate_object(render_job(work(resources=Resources(cpus=0.5, memory_gb=1.5)), target("gcp")), "1.33")
    )
    assert "nodeSelector" not in spec
    assert "tolerations" not in spec
    assert spec["containers"][0]["resources"]["requests"] == {"cpu": "0.5", "memory": "1.5G"}


def test_a_distributed_step_is_an_indexed_job_whose_ranks_meet_through_a_headless_service() -> None:
    job, service = (validate_object(o, "1.33") for o in render_indexed_job(work(), target(), 4))
    name = "stratus-run-1-train"
    assert (job["spec"]["completionMode"], job["spec"]["completions"], job["spec"]["parallelism"]) == (
        "Indexed",
        4,
        4,
    )
    assert pod(job)["subdomain"] == name
    env = {e["name"]: e for e in pod(job)["containers"][0]["env"]}
    assert env["STRATUS_RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    assert env["STRATUS_WORLD_SIZE"]["value"] == "4"
    assert env["STRATUS_COORDINATOR"]["value"] == f"{name}-0.{name}:29500"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"job-name": name}


def test_jobset_and_pytorchjob_render_where_the_site_runs_their_operator() -> None:
    jobset = validate_object(render_jobset(work(), target(), 3), "1.33")
    replicated = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]
    assert (replicated["completionMode"], replicated["completions"]) == ("Indexed", 3)
    pytorch = validate_object(render_pytorchjob(work(), target(), 3), "1.33")
    replicas = pytorch["spec"]["pytorchReplicaSpecs"]
    assert (replicas["Master"]["replicas"], replicas["Worker"]["replicas"]) == (1, 2)
    assert replicas["Master"]["template"]["spec"]["containers"][0]["name"] == "pytorch"
    assert 'STRATUS_RANK="$RANK"' in replicas["Worker"]["template"]["spec"]["containers"][0]["command"][2]


def test_a_ray_site_gets_a_kuberay_cluster_sized_to_the_largest_step() -> None:
    cluster = validate_object(
        render_raycluster(
            target(),
            name="stratus-ray",
            worker=Resources(cpus=8, memory_gb=32),
            workers=2,
            team="t",
            project="p",
        ),
        "1.33",
    )
    head = cluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"] == {"dashboard-host": "0.0.0.0", "num-cpus": "0"}
    assert {p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]} == {
        6379,
        8265,
        10001,
    }
    group = cluster["spec"]["workerGroupSpecs"][0]
    assert group["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "8",
        "memory": "32G",
    }


def test_serving_is_a_deployment_service_and_autoscaler_running_our_model_server() -> None:
    spec = ServeSpec(model="fraud", file_name="fraud.onnx", min_replicas=2, max_replicas=6)
    deployment, service, hpa = (validate_object(o, "1.30") for o in render_serving(spec, target()))
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    server = pod(deployment)["containers"][0]
    assert server["command"] == ["python", "-m", "stratus.serving.server"]
    assert server["args"] == ["--model", "fraud=/models/fraud.onnx", "--host", "0.0.0.0", "--port", "8000"]
    assert pod(deployment)["initContainers"][0]["command"][-2:] == [
        "s3://bucket/prefix/models/fraud.onnx",
        "/models/fraud.onnx",
    ]
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8000}]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "stratus-serve-fraud",
    }


def test_kserve_sites_get_a_v2_onnx_inference_service_checked_against_kserves_models() -> None:
    body = validate_object(
        inference_service_body(ServeSpec(model="fraud", file_name="fraud.onnx"), target()), "1.33"
    )
    model = body["spec"]["predictor"]["model"]
    assert (model["modelFormat"], model["protocolVersion"], model["storageUri"]) == (
        {"name": "onnx"},
        "v2",
        "s3://bucket/prefix/models/fraud.onnx",
    )
    body["spec"]["predictor"]["model"]["storageURI"] = "s3://typo"
    with pytest.raises(ManifestError) as caught:
        validate_object(body, "1.33")
    assert str(caught.value) == (
        "InferenceService ml-pipeline/stratus-kserve-fraud does not validate at "
        "spec.predictor.model.storageURI: not a field of V1beta1ModelSpec"
    )


def test_strict_validation_catches_a_deliberately_broken_job() -> None:
    job = as_dict(render_job(work(), target()))
    job["spec"]["template"]["spec"]["containers"][0]["resource"] = {"limits": {"cpu": "1"}}  # typo: resources
    with pytest.raises(ManifestError) as caught:
        validate_object(job, "1.33")
    assert str(caught.value) == (
        "Job ml-pipeline/stratus-run-1-train does not validate at spec.template.spec.containers.0: "
        "Additional properties are not allowed ('resource' was unexpected)"
    )
    job = as_dict(render_job(work(), target()))
    job["spec"]["backoffLimit"] = "three"
    with pytest.raises(ManifestError, match=r"at spec\.backoffLimit: 'three' is not of type 'integer'"):
        validate_object(job, "1.33")


def test_crd_pod_templates_are_checked_against_the_official_schema_and_their_fields_against_the_crd() -> None:
    cluster = as_dict(
        render_raycluster(target(), name="r", worker=Resources(), workers=1, team=None, project=None)
    )
    cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(ManifestError) as caught:
        validate_object(cluster, "1.33")
    assert (
        "RayCluster ml-pipeline/r does not validate at "
        "spec.workerGroupSpecs[0].template.spec.containers.0.imagePullPolicy: 3 is not of type"
        in str(caught.value)
    )
    jobset = as_dict(render_jobset(work(), target(), 2))
    jobset["spec"]["replicatedJob"] = []
    with pytest.raises(ManifestError, match=r"at spec\.replicatedJob: not a field of JobSet"):
        validate_object(jobset, "1.33")
    pytorch = as_dict(render_pytorchjob(work(), target(), 2))
    pytorch["spec"]["pytorchReplicaSpecs"]["Master"]["replica"] = 1
    with pytest.raises(ManifestError, match=r"unknown field\(s\) replica"):
        validate_object(pytorch, "1.33")


def test_an_unsupported_kubernetes_version_names_the_setting_to_change() -> None:
    with pytest.raises(
        ManifestError, match=r"no bundled schemas for Kubernetes 1\.99; set compute\.kubernetes_version"
    ):
        validate_object(render_job(work(), target()), "1.99")


def test_names_fold_to_dns_labels_and_stay_distinct() -> None:
    assert dns_name("stratus", "run-1", "train") == "stratus-run-1-train"
    folded = dns_name("stratus", "Run_1", "Train")
    assert folded.startswith("stratus-run-1-train-")
    assert folded != dns_name("stratus", "run-1", "train")
    assert len(dns_name("x" * 100)) == 63
    assert label_value("risk ml/team") != label_value("risk-ml-team")


def test_a_kubernetes_site_needs_a_context_and_an_image(tmp_path: Path) -> None:
    platform = tmp_path / "stratus.yaml"
    platform.write_text(
        "sites:\n  k:\n    provider: aws\n    region: us-east-1\n    storage: file://x\n"
        "    compute: {backend: kubernetes, context: aws}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_platform(platform)
    assert "backend: kubernetes needs image" in str(caught.value)
    assert "sites.k.compute" in str(caught.value)


def test_the_fraud_pipeline_renders_for_two_contexts_and_kubectl_loads_every_file(tmp_path: Path) -> None:
    platform = load_platform(EXAMPLE / "kubernetes.yaml")
    pipeline = load_pipeline(EXAMPLE / "pipeline.yaml", platform)
    targets = kubernetes_targets(platform.sites)
    assert [(t.site, t.context) for t in targets] == [("aws-eu-central", "aws"), ("gcp-eu-west", "gcp")]
    bundle = pipeline_bundle(pipeline, targets, "demo")
    kinds = {site: sorted({o["kind"] for o in objs}) for site, objs in bundle.objects.items()}
    assert kinds == {"aws-eu-central": ["Job", "RayCluster"], "gcp-eu-west": ["Job"]}
    assert bundle.skipped == [
        "preprocess at aws-eu-central: constraints.backends is serverless",
        "preprocess at gcp-eu-west: constraints.backends is serverless",
    ]
    files = write_bundle(bundle, tmp_path / "out")
    assert all(
        yaml.safe_load(f.read_text())["metadata"]["labels"]["stratus.io/bundle"] == "pipeline-fraud-detection"
        for f in files
    )
    served = serving_bundle(ServeSpec(model="fraud", file_name="fraud.onnx"), targets)
    assert {s: [o["kind"] for o in objs] for s, objs in served.objects.items()} == {
        "aws-eu-central": ["Deployment", "Service", "HorizontalPodAutoscaler"],
        "gcp-eu-west": ["InferenceService"],
    }
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the offline load check needs it")
    # `kubectl kustomize` is the one kubectl path that loads manifests without an API server (apply and
    # create --dry-run=client both need discovery): it parses every file and refuses duplicate objects.
    site = tmp_path / "out" / "aws-eu-central"
    (site / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": sorted(p.name for p in site.glob("*.yaml"))})
    )
    loaded = subprocess.run(
        [kubectl, "kustomize", str(site)], capture_output=True, text=True, check=True, timeout=60
    )
    names = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in yaml.safe_load_all(loaded.stdout))
    assert names == sorted(f"{o['kind']}/{o['metadata']['name']}" for o in bundle.objects["aws-eu-central"])
