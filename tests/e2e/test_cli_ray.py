"""``stratus run`` with a Ray site whose cluster does not answer: a clear error at plan time, exit 2.

No cluster is needed: the address points at a closed loopback port. A Ray site that the plan does not
use is not probed, so a dead cluster elsewhere in the platform never stops a run.
"""

from __future__ import annotations

from pathlib import Path

from stratus.processes import free_ports
from tests.run_world import pipeline, platform, stratus_cli, write_world


def test_a_needed_ray_site_that_does_not_answer_is_exit_2_naming_site_and_address(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    spec = platform()
    spec["sites"]["cheap"]["compute"] = {"backend": "ray", "address": f"http://127.0.0.1:{port}"}
    world = write_world(tmp_path, platform_spec=spec)
    result = stratus_cli("run", world, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "sites.cheap.compute.address: site cheap is needed by this plan" in result.stderr
    assert f"its Ray cluster at http://127.0.0.1:{port} does not answer" in result.stderr
    assert "stratus sandbox up --ray" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_dead_ray_site_the_plan_does_not_use_does_not_stop_the_run(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    spec = platform()
    spec["sites"]["vault"]["compute"] = {"backend": "ray", "address": f"http://127.0.0.1:{port}"}
    world = write_world(tmp_path, platform_spec=spec, pipeline_spec=pipeline(square={"replicate": []}))
    result = stratus_cli("run", world, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_sandbox_up_with_ray_for_an_unknown_site_is_exit_2_before_starting_anything(tmp_path: Path) -> None:
    out = tmp_path / "sandbox.yaml"
    result = stratus_cli("sandbox", "up", "--platform-out", out, "--ray", "nowhere", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        "--ray: no sandbox site nowhere; the sandbox's sites are: aws-us-east, aws-eu-central, gcp-eu-west"
        in result.stderr
    )
    assert not out.exists()
    assert not (tmp_path / ".stratus").exists()
