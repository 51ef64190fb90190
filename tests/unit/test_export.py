"""``stratus.export``: the fraud pipelines compiled by the KFP SDK and built with hera, then read back.

The KFP files are reloaded with the SDK's own loader (``kfp.components.load_component_from_file``) and
every step, edge, resource, node selector and secret is checked against the pipeline and its plan; the
Argo files go back through hera's Workflow model. Nothing here writes or parses IR by hand.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf.json_format import MessageToDict
from kfp import components

from stratus.config import Pipeline, Platform, load_pipeline, load_platform, parse_input
from stratus.errors import ConfigError
from stratus.export import ExportSpec, build_spec, find_gaps, parse_secret
from stratus.export.to_argo import ENTRYPOINT, build_workflow, check_workflow
from stratus.export.to_kfp import compile_kfp
from stratus.planner import Plan, plan

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud-detection"
IMAGE = "registry.example.com/stratus/fraud:0.1.0"
SECRET = parse_secret("fraud-db:dsn=FRAUD_DB_DSN")
WORKER = "exec python -m stratus.executors.worker /tmp/stratus-request.json"


def _planned(name: str) -> tuple[Pipeline, Platform, Plan]:
    platform = load_platform(EXAMPLE / "stratus.yaml")
    pipeline = load_pipeline(EXAMPLE / name, platform)
    return pipeline, platform, plan(pipeline, platform)


def _kfp_task(name: str) -> str:
    return name.replace("_", "-")  # the SDK's task and component names


def _compiled(tmp_path: Path, spec: ExportSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """Compile, reload with the SDK, and return the pipeline spec and the Kubernetes executor configs."""
    out = tmp_path / "pipeline.yaml"
    compile_kfp(spec, out)
    loaded = components.load_component_from_file(str(out))
    pipeline_spec = MessageToDict(loaded.pipeline_spec, preserving_proto_field_name=False)
    platform = MessageToDict(loaded.platform_spec)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return pipeline_spec, executors


def _request(container: dict[str, Any]) -> dict[str, Any]:
    assert container["command"][:2] == ["sh", "-c"]
    assert WORKER in container["command"][2]
    request: dict[str, Any] = json.loads(container["args"][0])
    return request


def test_kfp_fraud_pipeline_every_step_edge_and_resource(tmp_path: Path) -> None:
    pipeline, platform, result = _planned("pipeline.yaml")
    spec = build_spec(pipeline, platform, result, image=IMAGE, secrets=[SECRET])
    ir, executors = _compiled(tmp_path, spec)
    tasks = ir["root"]["dag"]["tasks"]
    assert set(tasks) == {"make-raw-transactions", *pipeline.steps}
    deployment = ir["deploymentSpec"]["executors"]
    for name, step in pipeline.steps.items():
        task = tasks[name]
        producers = {parse_input(ref)[0] or "make-raw-transactions" for ref in step.inputs}
        assert sorted(task.get("dependentTasks", [])) == sorted(producers), name
        for ref in step.inputs:  # each input is an artifact edge from the output that makes it
            producer, output = parse_input(ref)
            key = ref.replace("dataset:", "").replace(".", "_")
            edge = task["inputs"]["artifacts"][key]["taskOutputArtifact"]
            assert edge == {
                "producerTask": producer or "make-raw-transactions",
                "outputArtifactKey": output,
            }, name
        executor = task["componentRef"]["name"].replace("comp-", "exec-")
        container = deployment[executor]["container"]
        assert container["image"] == IMAGE
        request = _request(container)
        assert request["entrypoint"] == step.run
        assert request["step"] == name
        assert set(request["inputs"]) == set(step.inputs)
        assert request["outputs"] == {
            out: f"{{{{$.outputs.artifacts['{out}'].path}}}}" for out in step.outputs
        }
        resources = container["resources"]
        assert resources["resourceCpuRequest"] == f"{step.resources.cpus:g}"
        assert resources["resourceMemoryLimit"] == f"{step.resources.memory_gb:g}G"
        assert {"name": "STRATUS_SITE", "value": result.placement(name).site} in container["env"]
        assert task["retryPolicy"]["maxRetryCount"] == step.max_attempts - 1
        config = executors[executor]
        assert config["secretAsEnv"][0]["secretName"] == "fraud-db"
        assert config["secretAsEnv"][0]["keyToEnv"] == [{"secretKey": "dsn", "envVar": "FRAUD_DB_DSN"}]
        where = result.placement(name)
        if where.provider in ("gcp", "aws", "azure"):
            labels = config["nodeSelector"]["labels"]
            assert labels["topology.kubernetes.io/region"] == where.region, name
    train = deployment["exec-train"]["container"]["resources"]
    assert train["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert train["accelerator"]["resourceCount"] == "1"


def test_kfp_spot_gpu_step_on_gke_gets_spot_nodes_accelerator_model_and_region(tmp_path: Path) -> None:
    (tmp_path / "stratus.yaml").write_text(
        textwrap.dedent(
            """
            sites:
              gke-eu:
                provider: gcp
                region: europe-west4
                storage: file://sites/gke-eu
                compute: {backend: kubernetes, context: gke, image: eu.gcr.io/acme/fraud:2}
            """
        )
    )
    (tmp_path / "pipeline.yaml").write_text(
        textwrap.dedent(
            """
            name: spotty
            datasets:
              raw: {site: gke-eu, size_gb: 1}
            steps:
              train:
                run: steps:train
                inputs: [dataset:raw]
                outputs: {model: {size_gb: 0.1}}
                resources: {cpus: 4, memory_gb: 16, accelerators: "L4:1"}
                spot: true
            """
        )
    )
    platform = load_platform(tmp_path / "stratus.yaml")
    pipeline = load_pipeline(tmp_path / "pipeline.yaml", platform)
    result = plan(pipeline, platform)
    assert result.placement("train").pricing == "spot"
    spec = build_spec(pipeline, platform, result)  # no --image: the Kubernetes site's own
    ir, executors = _compiled(tmp_path, spec)
    assert ir["root"]["inputDefinitions"]["parameters"]["raw_uri"]["parameterType"] == "STRING"
    importer = ir["root"]["dag"]["tasks"]["importer"]
    assert importer["inputs"]["parameters"]["uri"]["componentInputParameter"] == "raw_uri"
    edge = ir["root"]["dag"]["tasks"]["train"]["inputs"]["artifacts"]["raw"]["taskOutputArtifact"]
    assert edge == {"producerTask": "importer", "outputArtifactKey": "artifact"}
    container = ir["deploymentSpec"]["executors"]["exec-train"]["container"]
    assert container["image"] == "eu.gcr.io/acme/fraud:2"
    assert container["resources"]["accelerator"] == {
        "resourceType": "nvidia.com/gpu",
        "resourceCount": "1",
        "type": "nvidia.com/gpu",
        "count": "1",
    }
    config = executors["exec-train"]
    assert config["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-l4",
        "cloud.google.com/gke-spot": "true",
        "topology.kubernetes.io/region": "europe-west4",
    }
    assert config["tolerations"] == [
        {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    ]

    unpinned = build_spec(pipeline, platform, result, placement=False)
    assert "topology.kubernetes.io/region" not in unpinned.task("train").node_selector
    assert unpinned.task("train").node_selector["cloud.google.com/gke-spot"] == "true"


def test_kfp_federated_step_gets_every_participant_and_the_gap_says_the_data_moves(tmp_path: Path) -> None:
    pipeline, platform, result = _planned("federated.yaml")
    spec = build_spec(pipeline, platform, result, image=IMAGE)
    ir, _ = _compiled(tmp_path, spec)
    train = ir["root"]["dag"]["tasks"]["train"]
    assert sorted(train["dependentTasks"]) == ["make-eu-transactions", "make-us-transactions"]
    request = _request(ir["deploymentSpec"]["executors"]["exec-train"]["container"])
    assert request["inputs"] == {}
    assert request["participants"] == {
        "gcp-eu-west": {"dataset:eu_transactions": "{{$.inputs.artifacts['eu_transactions'].path}}"},
        "aws-us-east": {"dataset:us_transactions": "{{$.inputs.artifacts['us_transactions'].path}}"},
    }
    assert ir["root"]["dag"]["tasks"]["export"]["dependentTasks"] == ["train"]
    gaps = {(g.feature, g.where): g.detail for g in find_gaps(pipeline, platform, result, "KFP")}
    assert "one Flower participant per data site (gcp-eu-west, aws-us-east)" in gaps[("federated", "train")]
    assert "KFP moves those datasets through its artifact store" in gaps[("federated", "train")]
    assert "fraud-federated@champion" in gaps[("register", "export")]
    assert ("residency", "dataset:eu_transactions") in gaps
    assert (
        "residency",
        "dataset:us_transactions",
    ) in gaps


def test_kfp_distributed_step_is_rank_zero_and_the_gap_names_every_rank(tmp_path: Path) -> None:
    pipeline, platform, result = _planned("distributed.yaml")
    spec = build_spec(pipeline, platform, result, image=IMAGE)
    ir, _ = _compiled(tmp_path, spec)
    assert set(ir["root"]["dag"]["tasks"]) == {
        "make-raw-transactions",
        "ingest",
        "preprocess",
        "train",
        "export",
    }
    container = ir["deploymentSpec"]["executors"]["exec-train"]["container"]
    assert not any(e["name"].startswith("STRATUS_RANK") for e in container["env"])
    assert container["resources"]["resourceMemoryLimit"] == "8G"
    where = result.placement("train")
    ranks = [where.site, *(p.site for p in where.participants)]
    gaps = {(g.feature, g.where): g.detail for g in find_gaps(pipeline, platform, result, "KFP")}
    assert gaps[("distributed", "train")].startswith(f"2 ranks across sites ({', '.join(ranks)})")
    assert f"exported as rank 0 alone at {where.site}" in gaps[("distributed", "train")]


def test_fraud_gaps_list_dual_write_residency_serverless_failover() -> None:
    pipeline, platform, result = _planned("pipeline.yaml")
    lines = [g.line() for g in find_gaps(pipeline, platform, result, "Argo Workflows")]
    assert lines[0] == (
        "replicate (ingest): dual-write of every output to gcp-eu-west, onprem-eu-gpu (acknowledged at 2 of "
        "them) is not expressed: Argo Workflows keeps one copy of each output in its artifact store; "
        "`stratus storage repair` cannot see it"
    )
    features = [line.split(" ", 1)[0] for line in lines]
    assert features == ["replicate", "residency", "placement", "serverless", "failover", "cost"]
    assert "EU residency" in lines[1]
    assert "point its artifact store at a bucket in EU" in lines[1]


def test_argo_workflow_round_trips_through_hera_with_the_dag_and_the_contract() -> None:
    pipeline, platform, result = _planned("pipeline.yaml")
    spec = build_spec(pipeline, platform, result, image=IMAGE, secrets=[SECRET])
    text = build_workflow(spec)
    model = check_workflow(text)
    assert model.entrypoint == ENTRYPOINT
    data = yaml.safe_load(text)
    templates = {t["name"]: t for t in data["spec"]["templates"]}
    dag = {t["name"]: t for t in templates[ENTRYPOINT]["dag"]["tasks"]}
    assert set(dag) == {"make-raw-transactions", *pipeline.steps}
    for name, step in pipeline.steps.items():
        producers = {parse_input(ref)[0] or "make-raw-transactions" for ref in step.inputs}
        assert set(dag[name]["dependencies"]) == producers, name
        sources = {a["from"] for a in dag[name]["arguments"]["artifacts"]}
        expected = set()
        for ref in step.inputs:
            producer, output = parse_input(ref)
            if producer is None:
                expected.add("{{tasks.make-raw-transactions.outputs.artifacts.raw-transactions}}")
            else:
                expected.add(f"{{{{tasks.{producer}.outputs.artifacts.{output}}}}}")
        assert sources == expected, name
        template = templates[name]
        container = template["container"]
        assert container["image"] == IMAGE
        request = _request(container)
        assert request["entrypoint"] == step.run
        assert request["run_id"] == "{{workflow.uid}}"
        assert request["outputs"] == {out: f"/stratus/outputs/{out}" for out in step.outputs}
        assert [a["path"] for a in template["outputs"]["artifacts"]] == list(request["outputs"].values())
        memory = f"{step.resources.memory_gb:g}G"
        assert container["resources"]["requests"]["memory"] == memory
        assert container["resources"]["limits"]["memory"] == memory
        secret = {"name": "FRAUD_DB_DSN", "valueFrom": {"secretKeyRef": {"name": "fraud-db", "key": "dsn"}}}
        assert secret in container["env"]
        assert template["retryStrategy"]["limit"] == step.max_attempts - 1
        where = result.placement(name)
        if where.provider in ("gcp", "aws", "azure"):
            assert template["nodeSelector"]["topology.kubernetes.io/region"] == where.region
    assert templates["train"]["container"]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_argo_federated_and_distributed_variants_are_valid_workflows() -> None:
    for name in ("federated.yaml", "distributed.yaml"):
        pipeline, platform, result = _planned(name)
        text = build_workflow(build_spec(pipeline, platform, result, image=IMAGE))
        assert check_workflow(text).generate_name == f"{pipeline.name}-"
    broken = yaml.safe_load(text)
    broken["spec"]["templates"][0]["container"]["env"] = "not a list"
    with pytest.raises(ValueError, match="env"):
        check_workflow(yaml.safe_dump(broken))


def test_a_site_with_no_image_and_no_image_flag_names_the_flag_and_the_site() -> None:
    pipeline, platform, result = _planned("pipeline.yaml")
    with pytest.raises(ConfigError) as caught:
        build_spec(pipeline, platform, result)
    assert caught.value.field == "--image"
    assert "is placed at site 'gcp-eu-west', which has no compute.image" in str(caught.value)


@pytest.mark.parametrize("value", ["fraud-db", "fraud-db:dsn", "Fraud_DB:dsn=X", "db:dsn=1X"])
def test_secret_flag_must_be_secret_key_env(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_secret(value)
    assert caught.value.field == "--secret"
    assert "is not SECRET:KEY=ENV" in str(caught.value)


def test_without_the_sdk_the_export_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline, platform, result = _planned("federated.yaml")
    spec = build_spec(pipeline, platform, result, image=IMAGE)
    monkeypatch.setitem(sys.modules, "hera.workflows", None)  # as if hera were not installed
    with pytest.raises(ConfigError) as caught:
        build_workflow(spec)
    assert "pip install 'stratus[argo]'" in str(caught.value)
    assert caught.value.exit_code == 2
