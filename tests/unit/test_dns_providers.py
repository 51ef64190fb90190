"""Route 53 and Cloudflare records rendered for a deployment, checked against each provider's shapes:
Route 53's with botocore's own service model and parameter validator (the schema the AWS CLI and SDK
send with), Cloudflare's with JSON Schemas written from its API reference (tests/unit/cloudflare_lb_schemas).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from stratus.errors import ConfigError
from stratus.serving.dns import GatewayAddress
from stratus.serving.dns.providers import (
    health_check_placeholder,
    main,
    render_cloudflare,
    render_route53,
    write_provider_files,
)
from tests.unit.cloudflare_lb_schemas import LOAD_BALANCER, MONITOR, POOL

botocore_session = pytest.importorskip("botocore.session", reason="botocore comes with the aws extra (s3fs)")
from botocore.model import Shape  # noqa: E402  (after the importorskip)
from botocore.validate import ParamValidator  # noqa: E402

# Global addresses: providers refuse private and documentation ranges (Python counts TEST-NETs private).
GATEWAYS = [
    GatewayAddress(name="gw-1", ip=ipaddress.ip_address("18.0.0.10"), port=8080),
    GatewayAddress(name="gw-2", ip=ipaddress.ip_address("35.0.0.20"), port=8080),
]
NAME = "fraud.example.com"


def _route53_problems(operation: str, params: dict[str, Any]) -> list[str]:
    """botocore's validation report (types, required members, minimum lengths and values) plus what
    botocore leaves to the service: enum membership and the model's maximums."""
    model = botocore_session.get_session().get_service_model("route53")
    shape = model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    problems = [report.generate_report()] if report.has_errors() else []
    problems += _model_problems(params, shape, operation)
    return problems


def _model_problems(value: Any, shape: Shape, where: str) -> list[str]:
    if shape.type_name == "structure" and isinstance(value, dict):
        return [
            p
            for key, item in value.items()
            if key in shape.members
            for p in _model_problems(item, shape.members[key], f"{where}.{key}")
        ]
    if shape.type_name == "list" and isinstance(value, list):
        return [
            p for i, item in enumerate(value) for p in _model_problems(item, shape.member, f"{where}[{i}]")
        ]
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        return [f"{where}: {value!r} is not one of {enum}"]
    most = shape.metadata.get("max")
    size = len(value) if isinstance(value, str) else value if isinstance(value, int) else None
    if most is not None and size is not None and size > most:
        return [f"{where}: {value!r} is over the maximum {most}"]
    return []


def _cloudflare_problems(schema: dict[str, Any], body: dict[str, Any]) -> list[str]:
    return [error.message for error in jsonschema_rs.validator_for(schema).iter_errors(body)]


def _apply_route53(rendered: dict[str, Any]) -> None:
    for gateway, create in rendered["health_checks"].items():
        assert _route53_problems("CreateHealthCheck", create) == [], gateway
    change = {"HostedZoneId": "Z0123456789ABCDEFGHIJ", "ChangeBatch": rendered["change_batch"]}
    assert _route53_problems("ChangeResourceRecordSets", change) == []


@pytest.mark.parametrize("routing", ["weighted", "multivalue", "failover"])
def test_route53_records_and_health_checks_fit_the_route53_model(routing: Any) -> None:
    rendered = render_route53(NAME, GATEWAYS, routing=routing, ttl=30)
    _apply_route53(rendered)
    records = [change["ResourceRecordSet"] for change in rendered["change_batch"]["Changes"]]
    assert [(r["Name"], r["Type"], r["TTL"], r["SetIdentifier"]) for r in records] == [
        ("fraud.example.com.", "A", 30, "gw-1"),
        ("fraud.example.com.", "A", 30, "gw-2"),
    ]
    assert [r["ResourceRecords"] for r in records] == [[{"Value": "18.0.0.10"}], [{"Value": "35.0.0.20"}]]
    assert [r["HealthCheckId"] for r in records] == [
        health_check_placeholder("gw-1"),
        "{{health-check-id:gw-2}}",
    ]
    checks = rendered["health_checks"]
    assert checks["gw-2"]["HealthCheckConfig"] == {
        "IPAddress": "35.0.0.20",
        "Port": 8080,
        "Type": "HTTP",
        "ResourcePath": "/v2/health/ready",
        "RequestInterval": 10,
        "FailureThreshold": 3,
    }
    expected = {
        "weighted": ("Weight", 1),
        "multivalue": ("MultiValueAnswer", True),
        "failover": ("Failover", None),
    }
    key, value = expected[routing]
    assert all(key in r for r in records)
    if routing == "failover":
        assert [r["Failover"] for r in records] == ["PRIMARY", "SECONDARY"]
    else:
        assert {r[key] for r in records} == {value}


def test_route53_ids_given_replace_the_placeholders_and_references_are_stable() -> None:
    rendered = render_route53(NAME, GATEWAYS, health_check_ids={"gw-1": "abc-1", "gw-2": "abc-2"})
    _apply_route53(rendered)
    assert [c["ResourceRecordSet"]["HealthCheckId"] for c in rendered["change_batch"]["Changes"]] == [
        "abc-1",
        "abc-2",
    ]
    again = render_route53(NAME, GATEWAYS)
    assert again["health_checks"] == rendered["health_checks"]  # applying twice creates no second check
    other = render_route53(NAME, GATEWAYS, failure_threshold=2)
    assert (
        other["health_checks"]["gw-1"]["CallerReference"]
        != rendered["health_checks"]["gw-1"]["CallerReference"]
    )


def test_the_route53_model_catches_what_route53_refuses() -> None:
    """The validation is real: a record Route 53 would refuse fails it."""
    bad = render_route53(NAME, GATEWAYS)
    bad["change_batch"]["Changes"][0]["ResourceRecordSet"]["Weight"] = 300
    bad["change_batch"]["Changes"][1]["ResourceRecordSet"]["Type"] = "B"
    bad["health_checks"]["gw-1"]["HealthCheckConfig"]["FailureThreshold"] = 11
    problems = _route53_problems(
        "ChangeResourceRecordSets", {"HostedZoneId": "Z1", "ChangeBatch": bad["change_batch"]}
    )
    assert any("Weight: 300 is over the maximum 255" in p for p in problems), problems
    assert any("'B' is not one of" in p for p in problems), problems
    assert any(
        "FailureThreshold" in p for p in _route53_problems("CreateHealthCheck", bad["health_checks"]["gw-1"])
    )


def test_cloudflare_monitor_pool_and_load_balancer_fit_the_documented_bodies() -> None:
    rendered = render_cloudflare(NAME, GATEWAYS, ttl=20)
    assert _cloudflare_problems(MONITOR, rendered["monitor"]) == []
    assert _cloudflare_problems(POOL, rendered["pool"]) == []
    assert _cloudflare_problems(LOAD_BALANCER, rendered["load_balancer"]) == []
    monitor, pool, lb = rendered["monitor"], rendered["pool"], rendered["load_balancer"]
    assert (monitor["type"], monitor["path"], monitor["port"], monitor["expected_codes"]) == (
        "http",
        "/v2/health/ready",
        8080,
        "200",
    )
    assert pool["name"] == "fraud-example-com-gateways"
    assert pool["monitor"] == "{{monitor-id}}"
    assert [(o["name"], o["address"]) for o in pool["origins"]] == [
        ("gw-1", "18.0.0.10"),
        ("gw-2", "35.0.0.20"),
    ]
    assert (lb["name"], lb["default_pools"], lb["fallback_pool"], lb["proxied"], lb["ttl"]) == (
        "fraud.example.com",
        ["{{pool-id}}"],
        "{{pool-id}}",
        False,
        20,
    )
    given = render_cloudflare(NAME, GATEWAYS, monitor_id="m1", pool_id="p1")
    assert (given["pool"]["monitor"], given["load_balancer"]["fallback_pool"]) == ("m1", "p1")


def test_the_cloudflare_schemas_catch_a_wrong_body() -> None:
    rendered = render_cloudflare(NAME, GATEWAYS)
    rendered["load_balancer"]["enabled"] = True  # not a field of the create call
    rendered["pool"]["origins"][0]["weight"] = 2
    rendered["monitor"]["type"] = "ftp"
    assert any("enabled" in p for p in _cloudflare_problems(LOAD_BALANCER, rendered["load_balancer"]))
    assert any("2" in p for p in _cloudflare_problems(POOL, rendered["pool"]))
    assert any("ftp" in p for p in _cloudflare_problems(MONITOR, rendered["monitor"]))


@pytest.mark.parametrize(
    ("gateways", "kwargs", "message"),
    [
        ([("gw-1", "127.0.0.1", 8080)], {}, "gateway gw-1 has address 127.0.0.1, which a provider's health"),
        ([("gw-1", "10.0.0.5", 8080)], {}, "give its public address"),
        ([("gw-1", "18.0.0.10", 8080), ("gw-2", "35.0.0.20", 9090)], {}, "ports 8080, 9090"),
        ([("gw-1", "18.0.0.10", 8080)], {"routing": "failover"}, "exactly two gateways"),
    ],
)
def test_what_a_provider_would_refuse_is_a_clear_error(
    gateways: list[tuple[str, str, int]], kwargs: dict[str, Any], message: str
) -> None:
    addresses = [GatewayAddress(name=n, ip=ipaddress.ip_address(ip), port=p) for n, ip, p in gateways]
    with pytest.raises(ConfigError, match=r"--gateway|--routing") as info:
        render_route53(NAME, addresses, **kwargs)
    assert message in str(info.value)


def test_the_files_a_user_applies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--name", NAME, "--gateway", "gw-1=18.0.0.10:8080", "--gateway", "35.0.0.20:8080"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [
        "cloudflare/README",
        "cloudflare/load-balancer.json",
        "cloudflare/monitor.json",
        "cloudflare/pool.json",
        "route53/README",
        "route53/change-batch.json",
        "route53/health-check-gw-1.json",
        "route53/health-check-gw-2.json",
    ]
    assert len(capsys.readouterr().out.splitlines()) == 8
    batch = json.loads((tmp_path / "route53" / "change-batch.json").read_text())
    assert _route53_problems("ChangeResourceRecordSets", {"HostedZoneId": "Z1", "ChangeBatch": batch}) == []
    readme = (tmp_path / "route53" / "README").read_text()
    assert "s/{{health-check-id:$gw}}/$id/" in readme
    assert "for gw in gw-1 gw-2" in readme
    assert "{{pool-id}}" in (tmp_path / "cloudflare" / "README").read_text()


def test_a_private_gateway_on_the_command_line_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--name", NAME, "--gateway", "127.0.0.2:8080", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --gateway: gateway gw-1 has address 127.0.0.2")
    assert not list(tmp_path.iterdir())


def test_write_provider_files_writes_only_the_providers_asked(tmp_path: Path) -> None:
    paths = write_provider_files(tmp_path, NAME, GATEWAYS, providers=["cloudflare"])
    assert {p.parent.name for p in paths} == {"cloudflare"}
