"""The ``ray`` backend's pure parts: its config, the resources a job asks Ray for, and how a finished
Ray job maps onto the local executor's failure kinds. The cluster itself is exercised in
tests/integration/test_ray_executor.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratus.config import Resources, Site
from stratus.executors import RayExecutor, StepRequest, SupportsGangs, SupportsPreemption, SupportsProbe
from stratus.executors.ray_jobs import bundle, classify_job, job_resources, probe_ray
from stratus.executors.registry import executor_for
from stratus.failures import classify_failure
from stratus.processes import free_ports


def ray_site(**compute: object) -> Site:
    spec = {"provider": "local", "region": "here", "storage": "file://x"}
    return Site.model_validate({**spec, "compute": {"backend": "ray", **compute}})


def test_a_ray_site_gets_the_ray_executor_with_its_capabilities() -> None:
    executor = executor_for("gpu", ray_site(address="http://127.0.0.1:8265/"))
    assert isinstance(executor, RayExecutor)
    assert isinstance(executor, SupportsPreemption)
    assert isinstance(executor, SupportsProbe)
    assert isinstance(executor, SupportsGangs)
    assert executor.address == "http://127.0.0.1:8265"


def test_a_ray_site_without_an_address_is_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match=r"compute.backend: ray needs compute.address, e.g. http://"):
        ray_site()


def test_a_ray_address_must_be_an_http_url() -> None:
    with pytest.raises(ValueError, match="should match pattern"):
        ray_site(address="ray://head:10001")


def test_a_step_asks_ray_for_its_cpus_memory_gpus_and_accelerator_type(tmp_path: Path) -> None:
    request = StepRequest(
        run_id="r",
        step="train",
        entrypoint="m:f",
        inputs={},
        outputs={},
        workdir=tmp_path,
        resources=Resources.model_validate({"cpus": 4, "memory_gb": 16, "accelerators": "L4:2"}),
    )
    assert job_resources(request) == {
        "entrypoint_num_cpus": 4.0,
        "entrypoint_memory": 16_000_000_000,
        "entrypoint_num_gpus": 2,
        "entrypoint_resources": {"accelerator_type:L4": 0.001},
    }
    assert bundle(request) == {"CPU": 4.0, "memory": 16e9, "GPU": 2.0, "accelerator_type:L4": 0.001}


@pytest.mark.parametrize(
    ("status", "error_type", "report", "cause", "kind", "words"),
    [
        ("SUCCEEDED", "", {"ok": True}, None, None, None),
        ("FAILED", "JOB_ENTRYPOINT_COMMAND_ERROR", {"failure": "error", "error": "raised KeyError: 'x'"},
         None, "error", "raised KeyError: 'x'"),
        ("FAILED", "JOB_ENTRYPOINT_COMMAND_ERROR", {"failure": "unreachable", "error": "raised OSError"},
         None, "unreachable", "raised OSError"),
        ("FAILED", "JOB_SUPERVISOR_ACTOR_DIED", {}, None, "preempted", "the Ray node running the step died"),
        ("FAILED", "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE", {}, None, "crashed", "the Ray job did not start"),
        ("FAILED", "RUNTIME_ENV_SETUP_FAILURE", {}, None, "crashed", "RUNTIME_ENV_SETUP_FAILURE"),
        ("FAILED", "JOB_ENTRYPOINT_COMMAND_ERROR", {}, None, "crashed", None),
        ("STOPPED", "", {}, "cancelled", "cancelled", "cancelled"),
        ("STOPPED", "", {}, "timeout", "timeout", "timeout"),
        ("STOPPED", "", {}, "preempted", "preempted", "reclaimed"),
        ("STOPPED", "", {}, None, "cancelled", "stopped on the Ray cluster"),
        ("SUCCEEDED", "", {}, None, "crashed", "without a result"),
    ],
)  # fmt: skip
def test_a_finished_job_maps_onto_the_local_executors_failure_kinds(
    status: str, error_type: str, report: dict[str, object], cause: str | None, kind: str | None,
    words: str | None,
) -> None:  # fmt: skip
    failure, error = classify_job(status, error_type, None, 1, report, cause)  # type: ignore[arg-type]
    assert failure == kind
    if words is None:
        assert error is None or kind == "crashed"
    else:
        assert error is not None
        assert words in error


def test_a_lost_node_is_an_infrastructure_failure_and_a_steps_own_error_is_the_users() -> None:
    lost, _ = classify_job("FAILED", "JOB_SUPERVISOR_ACTOR_DIED", "node died", None, {}, None)
    own, _ = classify_job("FAILED", "JOB_ENTRYPOINT_COMMAND_ERROR", None, 1, {"failure": "error"}, None)
    assert lost is not None
    assert own is not None
    assert classify_failure(lost) == "infrastructure"
    assert classify_failure(own) == "user"


def test_a_dead_address_is_reported_with_the_address() -> None:
    (port,) = free_ports(1)
    why = probe_ray(f"http://127.0.0.1:{port}", 2.0)
    assert why is not None
    assert f"its Ray cluster at http://127.0.0.1:{port} does not answer" in why
