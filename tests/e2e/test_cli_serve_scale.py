"""Several deployments, replicas and live scaling, as a user runs them through the real CLI.

Two deployments of different names run side by side (each its own folder, gateway port and processes);
``serve ls`` lists both, a command without ``--name`` refuses to guess, stopping one leaves the other
serving. ``--replicas 2`` gives a site two model servers that both get traffic. ``serve scale`` takes a
site from 1 to 3 model servers and back to 1 under steady load: every request succeeds, the new servers
serve, and no gateway ever had to retry (nothing was sent to a server on its way out). A port in use is
one line naming it and ``--port``, before anything starts.
"""

from __future__ import annotations

import http.client
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stratus.processes import free_ports
from tests.e2e.test_cli_serve_fleet import BODY, FailoverClient, gone, write_model
from tests.run_world import one_json, stratus_cli, write_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("scale")
    write_world(folder)
    write_model(folder / "logit.onnx")
    yield folder
    for listed in ls(folder)["deployments"]:  # whatever a failed test left running
        stratus_cli("serve", "stop", "--name", listed["name"], cwd=folder)


def serve(world: Path, *args: str) -> dict[str, Any]:
    result = stratus_cli("serve", "logit.onnx", *args, "--detach", "--json", cwd=world)
    assert result.returncode == 0, result.stderr + result.stdout
    return one_json(result.stdout)


def ls(world: Path) -> dict[str, Any]:
    result = stratus_cli("serve", "ls", "--json", cwd=world)
    assert result.returncode == 0, result.stderr
    return one_json(result.stdout)


def status(world: Path, name: str) -> dict[str, Any]:
    return one_json(stratus_cli("serve", "status", "--name", name, "--json", cwd=world).stdout)


def infer(url: str, model: str) -> tuple[int, str | None]:
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    try:
        conn.request("POST", f"/v2/models/{model}/infer", BODY, {"content-type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("x-stratus-site")
    finally:
        conn.close()


def served_by(world: Path, name: str) -> dict[str, int]:
    """Requests each backend got, as the deployment's (first) gateway counts them."""
    return {
        backend: record["requests"] for backend, record in status(world, name)["gateways"][0]["sites"].items()
    }


def gateway_retries(url: str) -> float:
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return sum(float(n) for n in re.findall(r"^stratus_gateway_retries_total\{[^}]*\} (\S+)$", text, re.M))


def test_two_deployments_side_by_side_listed_and_stopped_one_at_a_time(world: Path) -> None:
    first_port, second_port = free_ports(2)
    first = serve(world, "--sites", "cheap", "--port", str(first_port))
    second = serve(
        world, "--sites", "backup", "--name", "second", "--replicas", "2", "--port", str(second_port)
    )
    assert (first["name"], second["name"]) == ("logit", "second")
    assert Path(first["folder"]) == world / ".stratus" / "serve" / "logit"
    assert Path(second["folder"]) == world / ".stratus" / "serve" / "second"
    assert infer(first["gateway_url"], "logit")[0] == 200
    assert infer(second["gateway_url"], "second")[0] == 200

    listed = {d["name"]: d for d in ls(world)["deployments"]}
    assert set(listed) == {"logit", "second"}
    assert (listed["logit"]["replicas"], listed["logit"]["gateway_port"]) == ({"cheap": 1}, first_port)
    assert (listed["second"]["replicas"], listed["second"]["gateway_port"]) == ({"backup": 2}, second_port)
    assert listed["second"]["state"] == "running"
    assert listed["second"]["gateway_urls"] == [f"http://127.0.0.1:{second_port}"]
    text = stratus_cli("serve", "ls", cwd=world).stdout
    assert "backup (2)" in text
    assert "cheap (1)" in text

    # --replicas 2: both model servers of the site get traffic; answers name the site.
    sites = {infer(second["gateway_url"], "second")[1] for _ in range(20)}
    assert sites == {"backup"}
    served = served_by(world, "second")
    assert set(served) == {"backup", "backup~2"}
    assert min(served.values()) >= 5, served  # taking turns: 10 and 10 (11 and 10 with the first)

    for command in (("status",), ("stop",), ("drain", "cheap")):
        refused = stratus_cli("serve", *command, cwd=world)
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert "--name: 2 deployments are recorded here (logit, second): name one with --name" in " ".join(
            refused.stderr.split()
        )
    unknown = stratus_cli("serve", "status", "--name", "third", cwd=world)
    assert unknown.returncode == 2
    assert "no deployment named 'third'; deployments: logit, second" in unknown.stderr

    pids = [p["pid"] for p in status(world, "second")["processes"]]
    stopped = stratus_cli("serve", "stop", "--name", "second", cwd=world)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped second" in stopped.stdout
    assert all(gone(pid) for pid in pids)
    assert [d["name"] for d in ls(world)["deployments"]] == ["logit"]
    assert infer(first["gateway_url"], "logit")[0] == 200  # the other one serves on
    # With one deployment left, commands find it without --name again.
    assert stratus_cli("serve", "status", cwd=world).returncode == 0
    assert stratus_cli("serve", "stop", cwd=world).returncode == 0
    assert ls(world) == {"deployments": []}


def scale(world: Path, name: str, site: str, replicas: int) -> dict[str, Any]:
    result = stratus_cli(
        "serve", "scale", name, "--site", site, "--replicas", str(replicas), "--json", cwd=world
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return one_json(result.stdout)


def test_scale_up_and_down_under_load_fails_no_request(world: Path) -> None:
    (port,) = free_ports(1)
    deployment = serve(world, "--sites", "cheap,backup", "--policy", "failover", "--port", str(port))
    url = deployment["gateway_url"]
    try:
        # Four threads back to back; a request its gateway does not answer would be counted a failover.
        with FailoverClient([url, url]) as load:
            time.sleep(1.0)
            up = scale(world, "logit", "cheap", 3)
            assert (up["before"], up["after"]) == (1, 3)
            assert [added["name"] for added in up["added"]] == ["cheap~2", "cheap~3"]
            assert up["notes"] == []
            # failover sends everything to cheap: its new servers take turns with the first.
            mark = load.requests
            deadline = time.monotonic() + 60
            while load.requests < mark + 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            served = served_by(world, "logit")
            assert min(served["cheap~2"], served["cheap~3"]) > 0, served
            assert len(status(world, "logit")["sites"]) == 4  # the record names every server

            down = scale(world, "logit", "cheap", 1)
            assert (down["before"], down["after"], down["removed"]) == (3, 1, ["cheap~2", "cheap~3"])
            time.sleep(1.0)
        assert load.failures == [], load.failures[:5]
        assert load.failovers == 0
        assert load.requests > 200
        # Nothing was sent to a server on its way out: not one attempt had to be retried elsewhere.
        assert gateway_retries(url) == 0
        after = status(world, "logit")
        assert set(after["sites"]) == {"cheap", "backup"}
        assert set(after["gateways"][0]["sites"]) == {"cheap", "backup"}
        assert after["state"] == "running"
    finally:
        stratus_cli("serve", "stop", "--name", "logit", cwd=world)


def test_scale_mistakes_are_named(world: Path) -> None:
    (port,) = free_ports(1)
    serve(world, "--sites", "cheap", "--name", "small", "--port", str(port))
    try:
        for args, expected in [
            (
                ("--site", "vault", "--replicas", "2"),
                "--site: unknown site 'vault'; deployment small serves from cheap",
            ),
            (("--site", "cheap", "--replicas", "0"), "--replicas"),
        ]:
            result = stratus_cli("serve", "scale", "small", *args, cwd=world)
            assert result.returncode == 2, (args, result.stdout, result.stderr)
            assert expected in " ".join(result.stderr.split())
            assert "Traceback" not in result.stderr
    finally:
        stratus_cli("serve", "stop", "--name", "small", cwd=world)


def test_a_port_in_use_is_one_line_naming_it_before_anything_starts(world: Path) -> None:
    (port,) = free_ports(1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = stratus_cli(
            "serve", "logit.onnx", "--sites", "cheap", "--name", "busy", "--port", str(port), cwd=world
        )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: --port: port {port} on 127.0.0.1 is already in use; pick a free one with --port"
    ], result.stderr
    assert not (world / ".stratus" / "serve" / "busy").exists()  # nothing was started or recorded
