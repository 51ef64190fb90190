"""The OpenAPI 3 document the server publishes at /v2/openapi.json, and the live server (and the gateway
in front of it) fuzzed against it.

schemathesis generates requests for every documented operation from the document itself (valid and invalid
path parameters and bodies) and checks each answer: never a 5xx, a documented status code and content type,
documented headers, and a body that matches the documented schema. The document, like the one a running
server serves, lists the served models as the only values of ``model_name``, so that generated requests
reach the models rather than only "unknown model" answers.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from stratus.serving.server import openapi_document
from tests.integration.gateway_harness import start_gateway, wait_for
from tests.integration.serving_harness import (
    Server,
    binary_request,
    make_logit,
    make_mixed,
    start_server,
    stop,
    x_rows,
)

positive_data_acceptance = schemathesis.checks.positive_data_acceptance

pytestmark = pytest.mark.slow

V2_PATHS = {
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{model_name}",
    "/v2/models/{model_name}/versions/{model_version}",
    "/v2/models/{model_name}/ready",
    "/v2/models/{model_name}/versions/{model_version}/ready",
    "/v2/models/{model_name}/infer",
    "/v2/models/{model_name}/versions/{model_version}/infer",
    "/v2/models/{model_name}/config",
    "/v2/models/{model_name}/versions/{model_version}/config",
    "/v2/models/{model_name}/stats",
    "/v2/models/{model_name}/versions/{model_version}/stats",
    "/v2/models/stats",
    "/v2/repository/index",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("models")
    models = {"logit": make_logit(folder / "logit.onnx"), "mixed": make_mixed(folder / "mixed.onnx")}
    handle = start_server(models, folder / "server.log", "--max-body-bytes", "65536")
    yield handle
    stop(handle)


@pytest.fixture(scope="module")
def base_url(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def gateway_url(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway in front of the server, with the same body limit: it must answer as documented too."""
    config = {
        "sites": [{"name": "a", "url": f"http://127.0.0.1:{server.port}"}],
        "models": {"logit": {}, "mixed": {}},
        "limits": {"max_body_bytes": 65536},
    }
    gateway = start_gateway(config, tmp_path_factory.mktemp("gateway"))
    wait_for("the gateway ready", lambda: gateway.call("GET", "/v2/health/ready")[0] == 200)
    yield f"http://127.0.0.1:{gateway.port}"
    assert gateway.stop() == 0


# The packaged document as the server serves it (test_served_document_... checks that they are the same).
# Loaded here rather than from the live server because schemathesis's lazy loader,
# schemathesis.pytest.from_fixture, fails on pytest 9 (it sets Function._nodeid, which pytest 9 removed).
schema = schemathesis.openapi.from_dict(openapi_document(["logit", "mixed"]))


# One test per operation with its own id (schemathesis's parametrize gives every operation the same node
# id, so pytest-xdist, which `make test` uses, would run only one of them).
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


# The gateway proxies the /v2/models routes and answers the rest itself; it does not serve the document.
THROUGH_GATEWAY = [op for op in OPERATIONS if op.path.startswith(("/v2/models", "/v2/repository"))]


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_every_generated_request_gets_a_documented_answer(operation: Any, base_url: str) -> None:
    fuzz(operation, base_url)


@pytest.mark.parametrize("operation", THROUGH_GATEWAY, ids=[op.label for op in THROUGH_GATEWAY])
def test_every_generated_request_gets_a_documented_answer_through_the_gateway(
    operation: Any, gateway_url: str
) -> None:
    fuzz(operation, gateway_url)


def fuzz(operation: Any, base_url: str) -> None:
    """Generated requests for ``operation`` (bodies of every documented media type, the binary header's
    values included), each answered as documented."""

    @given(case=operation.as_strategy())
    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        # Every check but one: a body can match the schema and still not match the model (a tensor name, a
        # shape), which is a 400 the generic schema cannot rule out, so schema-valid data may be rejected.
        case.call_and_validate(base_url=base_url, excluded_checks=[positive_data_acceptance])

    check()


SUCCESSES = [
    ("/v2/health/live", "GET", {}, None),
    ("/v2/health/ready", "GET", {}, None),
    ("/v2", "GET", {}, None),
    ("/v2/models/{model_name}", "GET", {"model_name": "mixed"}, None),
    (
        "/v2/models/{model_name}/versions/{model_version}/ready",
        "GET",
        {"model_name": "logit", "model_version": "1"},
        None,
    ),
    (
        "/v2/models/{model_name}/infer",
        "POST",
        {"model_name": "logit"},
        {"id": "a", "inputs": [{"name": "x", "shape": [2, 30], "datatype": "FP32", "data": [0.5] * 60}]},
    ),
    ("/v2/models/{model_name}/config", "GET", {"model_name": "logit"}, None),
    (
        "/v2/models/{model_name}/versions/{model_version}/stats",
        "GET",
        {"model_name": "logit", "model_version": "1"},
        None,
    ),
    ("/v2/models/stats", "GET", {}, None),
    ("/v2/repository/index", "POST", {}, {"ready": True}),
    (
        "/v2/models/{model_name}/versions/{model_version}/infer",
        "POST",
        {"model_name": "mixed", "model_version": "1"},
        {
            "inputs": [
                {"name": "ids", "shape": [1, 3], "datatype": "INT64", "data": [1, 2, 3]},
                {"name": "label", "shape": [1], "datatype": "BYTES", "data": ["ok"]},
            ],
            "outputs": [{"name": "label_out"}],
        },
    ),
    ("/v2/openapi.json", "GET", {}, None),
    ("/metrics", "GET", {}, None),
]


def test_a_binary_answer_matches_the_document(base_url: str, gateway_url: str) -> None:
    framed = binary_request([("x", "FP32", x_rows(2))])
    operation = schema["/v2/models/{model_name}/infer"]["POST"]
    for url in (base_url, gateway_url):
        case = operation.Case(
            path_parameters={"model_name": "logit"},
            headers=framed.headers,
            body=framed.body,
            media_type="application/octet-stream",
        )
        response = case.call_and_validate(base_url=url, excluded_checks=[positive_data_acceptance])
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == ["application/octet-stream"]
        (length,) = response.headers["inference-header-content-length"]
        assert int(length) < len(response.content)


@pytest.mark.parametrize(("path", "method", "parameters", "body"), SUCCESSES)
def test_successful_answers_match_the_document(
    base_url: str, path: str, method: str, parameters: dict[str, str], body: Any
) -> None:
    # Generated infer bodies almost never fit a model, so the 200 answers are checked here on purpose.
    operation = schema[path][method]
    case = (
        operation.Case(path_parameters=parameters, body=body, media_type="application/json")
        if body
        else operation.Case(path_parameters=parameters)
    )
    response = case.call_and_validate(base_url=base_url, excluded_checks=[positive_data_acceptance])
    assert response.status_code == 200, response.text


def test_served_document_is_the_packaged_one_with_this_servers_models(server: Server) -> None:
    status, served = server.call("GET", "/v2/openapi.json")
    assert status == 200
    packaged = openapi_document()
    assert served["openapi"].startswith("3.")
    assert set(served["paths"]) >= V2_PATHS
    assert served["components"]["parameters"]["model_name"]["schema"]["enum"] == ["logit", "mixed"]
    assert "enum" not in packaged["components"]["parameters"]["model_name"]["schema"]
    status, meta = server.call("GET", "/v2")
    assert served["info"]["version"] == meta["version"]
    # Apart from those two, the served document is the packaged file.
    served["components"]["parameters"]["model_name"]["schema"].pop("enum")
    served["info"]["version"] = packaged["info"]["version"]
    assert served == packaged


def test_every_error_status_has_a_documented_error_body(server: Server) -> None:
    doc = openapi_document()
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    for code, name in [("400", "BadRequest"), ("404", "NotFound"), ("413", "PayloadTooLarge")]:
        assert doc["paths"]["/v2/models/{model_name}/infer"]["post"]["responses"][code] == {
            "$ref": f"#/components/responses/{name}"
        }
    allowed = doc["components"]["responses"]["MethodNotAllowed"]
    assert "Allow" in allowed["headers"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/v2/health/live", "GET"),
        ("DELETE", "/v2/models/logit", "GET"),
        ("GET", "/v2/models/logit/infer", "POST"),
        ("PUT", "/v2/openapi.json", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow_header(server: Server, method: str, path: str, allow: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 405
    assert response.getheader("allow") == allow
    assert response.getheader("content-type") == "application/json"
    assert f"use {allow}".encode() in body


def test_package_ships_the_document() -> None:
    # Read as package data, as the server reads it: in a wheel this needs pyproject's package-data entry.
    text = resources.files("stratus.serving").joinpath("openapi.json").read_text(encoding="utf-8")
    assert '"openapi": "3.0.3"' in text
