"""Gateway config files: good ones load (YAML or JSON), every bad one is a ConfigError that names the
file, the dotted field and what was expected, with no pydantic traceback and never the admin token.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from stratus.errors import ConfigError
from stratus.serving.gateway import GatewayConfig, ModelRoute, Upstream, load_gateway_config

GOOD = """\
port: 9000
admin_token: s3cret-token
health: {interval_s: 0.5, unhealthy_threshold: 3}
sites:
  - {name: us, url: "http://127.0.0.1:9001", priority: 0, cost_per_hour: 2.5}
  - {name: eu, url: "http://10.0.0.2:9002", priority: 1, weight: 3, cost_per_hour: 1.0}
models:
  fraud: {policy: cost}
  churn: {policy: failover, sites: [eu]}
"""


def write(tmp_path: Path, text: str, name: str = "gateway.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str, name: str = "gateway.yaml") -> ConfigError:
    path = write(tmp_path, text, name)
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path)
    assert caught.value.file == str(path)
    assert "pydantic" not in str(caught.value)
    return caught.value


def test_a_good_yaml_file_loads_with_defaults_filled_in(tmp_path: Path) -> None:
    config = load_gateway_config(write(tmp_path, GOOD))
    assert config.port == 9000
    assert config.health.interval_s == 0.5
    assert config.health.timeout_s == 0.5
    assert config.health.unhealthy_threshold == 3
    assert config.outlier.consecutive_errors == 3
    assert config.retry.budget_ratio == 0.2
    assert [s.name for s in config.route_sites("fraud")] == ["us", "eu"]
    assert [s.name for s in config.route_sites("churn")] == ["eu"]
    assert (config.sites[1].host, config.sites[1].port) == ("10.0.0.2", 9002)
    assert config.models["churn"] == ModelRoute(policy="failover", sites=["eu"])


def test_the_same_config_in_json_loads_even_when_indented_with_tabs(tmp_path: Path) -> None:
    doc = {
        "sites": [{"name": "a", "url": "http://127.0.0.1:9001"}],
        "models": {"m": {"policy": "weighted"}},
    }
    config = load_gateway_config(write(tmp_path, json.dumps(doc, indent="\t"), "gateway.json"))
    assert config.models["m"].policy == "weighted"
    assert config.host == "127.0.0.1"
    assert config.port == 8080


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, '{\n\t"sites": [\n\t\t{"name": "a",}\n\t]\n}\n', "gateway.json")
    assert err.line == 3
    assert "invalid JSON" in err.detail


def test_a_bad_policy_names_the_field_and_the_policies(tmp_path: Path) -> None:
    err = error_for(tmp_path, GOOD.replace("policy: cost", "policy: cheapest"))
    assert err.field == "models.fraud.policy"
    assert err.line == 8
    assert "'failover', 'latency', 'weighted' or 'cost'" in err.detail
    assert "cheapest" in err.detail
    assert str(err).startswith(f"{err.file}:8:")


def test_an_unknown_key_lists_the_known_ones(tmp_path: Path) -> None:
    err = error_for(tmp_path, GOOD.replace("interval_s: 0.5", "interval: 0.5"))
    assert err.field == "health.interval"
    assert "unknown key 'interval'; expected one of: path, interval_s, timeout_s" in err.detail


def test_a_route_to_an_unknown_site_names_the_entry_and_the_sites(tmp_path: Path) -> None:
    err = error_for(tmp_path, GOOD.replace("sites: [eu]", "sites: [eu, asia]"))
    assert err.field == "models.churn.sites[1]"
    assert err.detail == "no site named 'asia'; sites: us, eu"
    assert err.line == 9


def test_a_grpc_front_loads_and_needs_a_site_with_a_grpc_port(tmp_path: Path) -> None:
    with_port = GOOD.replace("cost_per_hour: 2.5}", "cost_per_hour: 2.5, grpc_port: 9101}")
    config = load_gateway_config(write(tmp_path, with_port + "grpc: {port: 9100}\n"))
    assert config.grpc is not None
    assert config.grpc.port == 9100
    assert [site.grpc_port for site in config.sites] == [9101, None]
    assert load_gateway_config(write(tmp_path, GOOD)).grpc is None  # off unless configured
    err = error_for(tmp_path, GOOD + "grpc: {port: 9100}\n")
    assert err.field == "grpc"
    assert err.detail == "no site has a grpc_port, so gRPC requests would have nowhere to go"
    err = error_for(tmp_path, with_port.replace("grpc_port: 9101", "grpc_port: 70000"))
    assert err.field == "sites[0].grpc_port"


def test_duplicate_site_names_are_refused(tmp_path: Path) -> None:
    err = error_for(tmp_path, GOOD.replace("name: eu", "name: us"))
    assert err.field == "sites[1].name"
    assert err.detail == "duplicate site name 'us' (also sites[0])"


def test_a_site_listed_twice_in_a_route_is_refused(tmp_path: Path) -> None:
    err = error_for(tmp_path, GOOD.replace("sites: [eu]", "sites: [eu, eu]"))
    assert err.field == "models.churn.sites[1]"
    assert err.detail == "site 'eu' is listed twice"


def test_at_least_one_site_is_required(tmp_path: Path) -> None:
    err = error_for(tmp_path, "sites: []\nmodels: {m: {}}\n")
    assert err.field == "sites"
    assert "at least 1 item" in err.detail


def test_a_missing_models_section_is_named(tmp_path: Path) -> None:
    err = error_for(tmp_path, 'sites: [{name: a, url: "http://127.0.0.1:1"}]\n')
    assert err.field == "models"
    assert err.detail == "required field is missing"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://127.0.0.1:9001", "expected http://host:port (the gateway speaks plain HTTP/1.1)"),
        ("http://127.0.0.1:9001/v2", "expected http://host:port with no path, query or user"),
        ("127.0.0.1:9001", "expected http://host:port"),
        ("http://127.0.0.1:99999", "invalid URL"),
    ],
)
def test_a_site_url_must_be_plain_http_host_and_port(tmp_path: Path, url: str, expected: str) -> None:
    err = error_for(tmp_path, GOOD.replace("http://10.0.0.2:9002", url))
    assert err.field == "sites[1].url"
    assert expected in err.detail


@pytest.mark.parametrize(
    ("old", "new", "field", "expected"),
    [
        ("interval_s: 0.5", "interval_s: 0", "health.interval_s", "greater than 0"),
        (
            "unhealthy_threshold: 3",
            "unhealthy_threshold: 0",
            "health.unhealthy_threshold",
            "greater than or equal to 1",
        ),
        ("weight: 3", "weight: -1", "sites[1].weight", "greater than or equal to 0"),
        ("port: 9000", "port: 70000", "port", "less than or equal to 65535"),
        ("name: eu", "name: eu/west", "sites[1].name", "should match pattern"),
    ],
)
def test_out_of_range_values_name_the_field(
    tmp_path: Path, old: str, new: str, field: str, expected: str
) -> None:
    err = error_for(tmp_path, GOOD.replace(old, new))
    assert err.field == field
    assert expected in err.detail


def test_max_ejection_below_base_is_refused(tmp_path: Path) -> None:
    err = error_for(tmp_path, GOOD + "outlier: {base_ejection_s: 10, max_ejection_s: 5}\n")
    assert err.field == "outlier"
    assert "max_ejection_s (5.0) must be at least base_ejection_s (10.0)" in err.detail


def test_a_bad_admin_token_is_refused_without_echoing_it(tmp_path: Path) -> None:
    err = error_for(tmp_path, GOOD.replace("admin_token: s3cret-token", "admin_token: 123456789"))
    assert err.field == "admin_token"
    assert "expected a non-empty string" in err.detail
    assert "123456789" not in str(err)


def test_the_token_is_not_in_the_config_repr(tmp_path: Path) -> None:
    config = load_gateway_config(write(tmp_path, GOOD))
    assert config.admin_token == "s3cret-token"
    assert "s3cret-token" not in repr(config)
    assert "s3cret-token" not in str(config)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found; check the path"):
        load_gateway_config(tmp_path / "nope.yaml")


def test_configs_built_in_code_are_checked_too() -> None:
    with pytest.raises(ValidationError, match=r"models\.m\.sites\[0\]: no site named 'b'; sites: a"):
        GatewayConfig(
            sites=[Upstream(name="a", url="http://127.0.0.1:1")],
            models={"m": ModelRoute(sites=["b"])},
        )
    config = GatewayConfig(sites=[Upstream(name="a", url="http://127.0.0.1:1")], models={"m": ModelRoute()})
    assert config.models["m"].policy == "latency"
    with pytest.raises(ValidationError, match="frozen"):
        config.port = 1  # type: ignore[misc]


def test_limits_load_and_a_budget_below_one_body_is_an_error_naming_the_field(tmp_path: Path) -> None:
    config = load_gateway_config(write(tmp_path, GOOD + "limits: {header_timeout_s: 2.5, keep_alive_s: 1}\n"))
    assert (config.limits.header_timeout_s, config.limits.keep_alive_s) == (2.5, 1.0)
    assert config.limits.max_body_bytes == 16 * 1024 * 1024  # the default, as the model server's
    err = error_for(tmp_path, GOOD + "limits:\n  max_body_bytes: 1000\n  max_inflight_bytes: 999\n")
    assert "limits" in str(err)
    assert "max_inflight_bytes (999) must be at least max_body_bytes (1000)" in str(err)
    err = error_for(tmp_path, GOOD + "limits:\n  body_timeout_s: 0\n")
    assert "limits.body_timeout_s" in str(err)
    assert err.line == GOOD.count("\n") + 2
