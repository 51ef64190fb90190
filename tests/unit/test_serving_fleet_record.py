"""The pieces under `serve status|stop|drain|weights`, without starting a fleet.

A recorded process counts as ours only while its command line is exactly the recorded one (a reused PID
is not signalled); the status census tells running from dead from the record alone; weights are parsed
with messages naming WEIGHTS; the gateway's admin API changes a site's weight; the DNS wiring's argv is
one the responder accepts.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratus.errors import ConfigError, ServingError
from stratus.processes import command_line, is_running, stop_process
from stratus.serving.deployment import (
    Deployment,
    GatewayProcess,
    SiteProcess,
    load_deployment,
    save_deployment,
)
from stratus.serving.fleet import default_dns_name, dns_available, dns_command, gateway_host
from stratus.serving.fleet_state import fleet_state, process_states
from stratus.serving.gateway.admin import Admin
from stratus.serving.gateway.config import HealthCheck, OutlierDetection, Upstream
from stratus.serving.gateway.health import SiteState
from stratus.serving.gateway.policies import Route
from stratus.serving.operator import OperatorState, load_operator_state, parse_weights, save_operator_state

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)", "stratus-test-sleeper"]


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(SLEEPER)
    deadline = time.monotonic() + 10
    while command_line(process.pid) is None and time.monotonic() < deadline:
        time.sleep(0.01)  # /proc shows an empty command line until the exec has finished
    yield process
    process.kill()
    process.wait()


def record(folder: Path, *, server_pid: int, gateway_pid: int, supervisor_pid: int = 0) -> Deployment:
    deployment = Deployment(
        model="m",
        source="m.onnx",
        policy="weighted",
        folder=str(folder),
        gateway_port=8080,
        admin_token="not-shown",
        supervisor_pid=supervisor_pid,
        supervisor_command=SLEEPER,
        ready=True,
    )
    deployment.sites["eu"] = SiteProcess("eu", 9001, server_pid, "eu.log", SLEEPER, "m.onnx", 0.5)
    deployment.sites["us"] = SiteProcess("us", 9002, 0, "us.log", SLEEPER, "m.onnx", 0.5)
    deployment.gateways.append(GatewayProcess("gateway-1", "127.0.0.1", 8080, gateway_pid, "g.log", SLEEPER))
    return deployment


def test_a_pid_is_ours_only_while_its_whole_command_line_matches(sleeper: subprocess.Popen[bytes]) -> None:
    assert is_running(sleeper.pid, SLEEPER)
    assert not is_running(sleeper.pid, [*SLEEPER[:-1], "another-program"])
    assert is_running(sleeper.pid, "stratus-test-sleeper")  # the substring form still works
    stop_process(sleeper.pid, [*SLEEPER[:-1], "another-program"], timeout_s=0.1)
    assert sleeper.poll() is None  # not ours by its command line: left alone
    stop_process(sleeper.pid, SLEEPER, timeout_s=5)
    sleeper.wait(timeout=5)
    assert not is_running(sleeper.pid, SLEEPER)


def test_the_census_tells_live_from_dead_processes_from_the_record_alone(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    deployment = record(tmp_path, server_pid=sleeper.pid, gateway_pid=sleeper.pid)
    states = {(s.role, s.name): s.running for s in process_states(deployment)}
    assert states == {
        ("supervisor", "supervisor"): False,
        ("gateway", "gateway-1"): True,
        ("server", "eu"): True,
        ("server", "us"): False,
    }
    assert fleet_state(deployment, process_states(deployment)) == "degraded"
    nothing = record(tmp_path, server_pid=0, gateway_pid=0)
    assert fleet_state(nothing, process_states(nothing)) == "stopped"
    everything = record(tmp_path, server_pid=sleeper.pid, gateway_pid=sleeper.pid, supervisor_pid=sleeper.pid)
    everything.sites["us"].pid = sleeper.pid
    assert fleet_state(everything, process_states(everything)) == "running"
    everything.ready = False
    assert fleet_state(everything, process_states(everything)) == "starting"


def test_the_record_round_trips_and_an_unreadable_one_is_named(tmp_path: Path) -> None:
    deployment = record(tmp_path, server_pid=12, gateway_pid=13)
    save_deployment(deployment)
    assert (tmp_path / "deployment.json").stat().st_mode & 0o777 == 0o600
    loaded = load_deployment(tmp_path)
    assert loaded == deployment
    assert loaded is not None
    assert loaded.gateway_urls == ["http://127.0.0.1:8080"]
    assert "admin_token" not in deployment.to_json()
    (tmp_path / "deployment.json").write_text('{"model": "m"}')
    with pytest.raises(ServingError, match=r"deployment\.json: not a deployment record .* PIDs"):
        load_deployment(tmp_path)


def test_operator_settings_survive_in_their_own_owner_only_file(tmp_path: Path) -> None:
    assert load_operator_state(tmp_path) == OperatorState()
    save_operator_state(tmp_path, OperatorState(drained=["eu"], weights={"us": 2.0}))
    assert load_operator_state(tmp_path) == OperatorState(drained=["eu"], weights={"us": 2.0})
    assert (tmp_path / "operator.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("eu", "'eu' is not SITE=WEIGHT; expected e.g. eu=3,us=2"),
        ("eu=", "'eu=' is not SITE=WEIGHT"),
        ("=3", "'=3' is not SITE=WEIGHT"),
        ("eu=3,,us=1", "'' is not SITE=WEIGHT"),
        ("eu=three", "eu=three: expected a number >= 0"),
        ("eu=-1", "eu=-1: expected a number >= 0"),
        ("eu=inf", "eu=inf: expected a number >= 0"),
        ("eu=1,asia=1", "unknown site 'asia'; this deployment serves from eu, us"),
        ("eu=1,eu=2", "site 'eu' is given twice"),
    ],
)
def test_bad_weights_are_refused_naming_the_argument(tmp_path: Path, text: str, message: str) -> None:
    deployment = record(tmp_path, server_pid=0, gateway_pid=0)
    with pytest.raises(ConfigError) as caught:
        parse_weights(text, deployment)
    assert caught.value.field == "WEIGHTS"
    assert message in str(caught.value)
    assert caught.value.exit_code == 2


def test_weights_parse_with_spaces_and_decimals(tmp_path: Path) -> None:
    deployment = record(tmp_path, server_pid=0, gateway_pid=0)
    assert parse_weights(" eu = 3 , us=0.5", deployment) == {"eu": 3.0, "us": 0.5}


def test_the_admin_api_sets_a_sites_weight_and_the_weighted_order_follows() -> None:
    sites = {
        name: SiteState(
            Upstream(name=name, url=f"http://127.0.0.1:{port}"), HealthCheck(), OutlierDetection()
        )
        for name, port in (("eu", 9001), ("us", 9002))
    }
    for site in sites.values():
        site.on_check(200, None, 0.001, 0.0)
    route = Route("m", "weighted", list(sites.values()))
    admin = Admin("secret", sites, {"m": route}, clock=lambda: 0.0)
    bearer = b"Bearer secret"
    status, doc, _ = admin.handle("POST", ["sites", "us", "weight", "3.5"], bearer)
    assert (status, doc["weight"]) == (200, 3.5)
    assert route.describe(0.0)["order"] == ["us", "eu"]
    assert admin.handle("POST", ["sites", "us", "weight", "-1"], bearer)[:2] == (
        400,
        {"error": "weight '-1': expected a number >= 0"},
    )
    assert admin.handle("POST", ["sites", "us", "weight", "nan"], bearer)[0] == 400
    assert admin.handle("POST", ["sites", "asia", "weight", "1"], bearer)[1] == {
        "error": "no site named 'asia'; sites: eu, us"
    }
    assert admin.handle("GET", ["sites", "us", "weight", "1"], bearer)[0] == 405
    assert admin.handle("POST", ["sites", "us", "weight", "1"], b"Bearer wrong")[0] == 403
    assert sites["us"].upstream.weight == 3.5  # refused calls changed nothing


def test_gateways_get_one_loopback_address_each() -> None:
    assert [gateway_host(i) for i in (0, 1, 253)] == ["127.0.0.1", "127.0.0.2", "127.0.0.254"]
    with pytest.raises(ServingError, match="at most 254 gateways"):
        gateway_host(254)


def test_the_default_dns_name_is_a_valid_name_for_any_model() -> None:
    assert default_dns_name("fraud") == "fraud.stratus.local."
    assert default_dns_name("Flow_Logit v2") == "flow-logit-v2.stratus.local."
    assert default_dns_name("__") == "model.stratus.local."


def test_the_dns_wiring_is_an_argv_the_responder_accepts() -> None:
    gateways = [GatewayProcess(f"gateway-{i + 1}", gateway_host(i), 8080, 0, "g.log", []) for i in range(2)]
    command = dns_command("fraud.stratus.local.", gateways, "127.0.0.1", 5353)
    if not dns_available():
        assert command is None
        pytest.skip("stratus.serving.dns is not in this build")
    assert command is not None
    cli = pytest.importorskip("stratus.serving.dns.cli")
    config = cli.build_config(command[3:])
    assert [str(g.ip) for g in config.gateways] == ["127.0.0.1", "127.0.0.2"]
    assert config.port == 5353


def test_one_backend_is_drained_by_its_exact_name_not_its_whole_site() -> None:
    """A rolling update replaces replica ``eu`` (named as its site) with ``eu~2``: draining ``eu`` through
    ``/admin/sites`` would drain both, so ``/admin/backends/NAME/drain`` names exactly one."""
    sites = {
        name: SiteState(
            Upstream(name=name, site=site, url=f"http://127.0.0.1:{port}"), HealthCheck(), OutlierDetection()
        )
        for name, site, port in (("eu", "eu", 9001), ("eu~2", "eu", 9002))
    }
    admin = Admin("secret", sites, {"m": Route("m", "failover", list(sites.values()))}, clock=lambda: 0.0)
    bearer = b"Bearer secret"
    status, doc, _ = admin.handle("POST", ["backends", "eu", "drain"], bearer)
    assert (status, doc["name"], doc["drained"]) == (200, "eu", True)
    assert (sites["eu"].drained, sites["eu~2"].drained) == (True, False)
    assert admin.handle("POST", ["backends", "eu", "undrain"], bearer)[1]["drained"] is False
    assert admin.handle("POST", ["backends", "us", "drain"], bearer)[:2] == (
        404,
        {"error": "no backend named 'us'; backends: eu, eu~2"},
    )
    assert admin.handle("GET", ["backends", "eu", "drain"], bearer)[0] == 405
    assert admin.handle("POST", ["backends", "eu~2", "drain"], b"Bearer wrong")[0] == 403
    assert sites["eu~2"].drained is False  # the refused call changed nothing
