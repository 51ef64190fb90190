"""The global gateway as a real subprocess in front of real model servers (and a few stand-in sites).

Checked here: answers equal numpy's through the gateway; 4xx pass through unchanged and unretried; each
policy sends traffic where it says; a site SIGKILLed or drained (SIGTERM) under load costs no client
request and comes back; passive ejection grows; the retry budget bounds retries on a sick fleet; the
admin API's auth, drain and undrain. Nothing asserts a duration: every wait polls with a generous limit.
Servers, gateways, load and stand-ins are in :mod:`tests.integration.gateway_harness`.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from stratus.serving.gateway.upstream import ConnectionPool, UpstreamError
from tests.integration.gateway_harness import (
    TOKEN,
    FakeUpstream,
    Fleet,
    Gateway,
    Load,
    free_port,
    metric_sum,
    start_gateway,
    wait_for,
)
from tests.integration.serving_harness import ROOT, expected_prob, make_logit, x_rows

pytestmark = pytest.mark.slow

INFER = "/v2/models/logit/infer"
StartGateway = Callable[..., Gateway]


def infer_body(x: np.ndarray[Any, Any], **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}],
        **extra,
    }


ONE_ROW = infer_body(x_rows(1))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Three model servers (sites a, b, c); each serves the logit model under several names, one per
    policy under test, and drains for 1 s on SIGTERM."""
    folder = tmp_path_factory.mktemp("fleet")
    logit = make_logit(folder / "logit.onnx")
    models = dict.fromkeys(("logit", "fo", "cost", "w", "lat"), logit)
    handle = Fleet(models, folder, ["a", "b", "c"], "--drain-s", "1")
    yield handle
    handle.stop_all()


@pytest.fixture
def up(fleet: Fleet) -> Fleet:
    """The fleet with every server running (a test before may have killed or drained one)."""
    fleet.ensure_up()
    return fleet


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[StartGateway]:
    """Start gateways; at teardown each gets SIGTERM and must exit 0."""
    started: list[Gateway] = []

    def start(config: dict[str, Any], **kwargs: Any) -> Gateway:
        gateway = start_gateway(config, tmp_path, f"gateway{len(started)}", **kwargs)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        code = gateway.stop()
        assert code == 0, f"gateway exited with {code}: {gateway.log.read_text()[-2000:]}"


def sites(fleet: Fleet, *names: str) -> list[dict[str, Any]]:
    return [{"name": name, "url": fleet.url(name)} for name in names]


def all_healthy(gateway: Gateway) -> None:
    wait_for("every site healthy", lambda: all(s["state"] == "healthy" for s in gateway.sites().values()))


def test_inference_through_the_gateway_equals_numpy(up: Fleet, gateways: StartGateway) -> None:
    gw = gateways({"sites": sites(up, "a", "b"), "models": {"logit": {"policy": "latency"}}})
    all_healthy(gw)
    x = x_rows(5)
    status, doc, headers = gw.call_with_headers("POST", INFER, infer_body(x, id="req-7"))
    assert status == 200, doc
    assert (doc["model_name"], doc["id"]) == ("logit", "req-7")
    prob = np.asarray(doc["outputs"][0]["data"], dtype=np.float32).reshape(5, 1)
    np.testing.assert_allclose(prob, expected_prob(x), rtol=1e-5, atol=1e-6)
    assert headers["x-stratus-site"] in {"a", "b"}
    # What a server answers directly, the gateway answers the same.
    direct = up.servers["a"].call("POST", INFER, infer_body(x, id="req-7"))
    assert direct == (200, doc)
    status, doc = gw.call("POST", "/v2/models/logit/versions/1/infer", infer_body(x))
    assert status == 200
    assert gw.call("GET", "/v2/models/logit") == up.servers["b"].call("GET", "/v2/models/logit")
    assert gw.call("GET", "/v2/models/logit/versions/1")[0] == 200
    assert gw.call("GET", "/v2/models/logit/ready") == (200, {"name": "logit", "ready": True})


def test_the_gateway_answers_health_metadata_and_unknown_models_itself(
    up: Fleet, gateways: StartGateway
) -> None:
    gw = gateways({"sites": sites(up, "a"), "models": {"logit": {}}})
    all_healthy(gw)
    assert gw.call("GET", "/v2/health/live") == (200, {"live": True})
    assert gw.call("GET", "/v2/health/ready") == (200, {"ready": True})
    status, meta = gw.call("GET", "/v2")
    assert status == 200
    assert meta["name"] == "stratus-gateway"
    assert gw.call("POST", "/v2/models/nope/infer", ONE_ROW) == (
        404,
        {"error": "unknown model 'nope': the models served here are ['logit']"},
    )
    assert gw.call("GET", "/nowhere")[0] == 404
    assert gw.call("POST", "/v2/health/ready")[0] == 405
    assert gw.call("POST", INFER, ONE_ROW)[0] == 200
    metrics = gw.metrics()
    assert metric_sum(metrics, "stratus_gateway_requests_total", model="logit", site="a", code="200") == 1
    assert metric_sum(metrics, "stratus_gateway_upstream_seconds_count", site="a") == 1
    assert metric_sum(metrics, "stratus_gateway_site_healthy", site="a") == 1
    assert metric_sum(metrics, "stratus_gateway_requests_total", model="unknown", code="404") == 1
    for family in ("stratus_gateway_retries_total", "stratus_gateway_ejections_total"):
        assert f'{family}{{site="a"}} 0.0' in metrics  # every site's series exists from the start


def test_a_400_passes_through_unchanged_and_is_not_retried(up: Fleet, gateways: StartGateway) -> None:
    gw = gateways({"sites": sites(up, "a", "b", "c"), "models": {"logit": {"policy": "failover"}}})
    all_healthy(gw)
    bad = {"inputs": [{"name": "x", "shape": [1, 29], "datatype": "FP32", "data": [0.5] * 29}]}
    direct = up.servers["a"].call("POST", INFER, bad)
    assert direct[0] == 400
    before = up.served(route=None, code="400")
    assert gw.call("POST", INFER, bad) == direct
    after = up.served(route=None, code="400")
    assert {name: after[name] - before[name] for name in after} == {"a": 1, "b": 0, "c": 0}
    state = gw.sites()
    assert [(s["requests"], s["failures"], s["retries"]) for s in state.values()] == [
        (1, 0, 0),
        (0, 0, 0),
        (0, 0, 0),
    ]


def test_each_policy_sends_traffic_where_it_says(up: Fleet, gateways: StartGateway) -> None:
    slow = FakeUpstream(200, delay_s=0.1)  # far slower than any hiccup of a real server here
    try:
        gw = gateways(
            {
                "sites": [
                    {"name": "a", "url": up.url("a"), "priority": 1, "weight": 1, "cost_per_hour": 3.0},
                    {"name": "b", "url": up.url("b"), "priority": 2, "weight": 3, "cost_per_hour": 1.0},
                    {"name": "c", "url": up.url("c"), "priority": 0, "weight": 0, "cost_per_hour": 2.0},
                    {"name": "slow", "url": slow.url},
                ],
                "models": {
                    "fo": {"policy": "failover", "sites": ["a", "b", "c"]},
                    "cost": {"policy": "cost", "sites": ["a", "b", "c"]},
                    "w": {"policy": "weighted", "sites": ["a", "b", "c"]},
                    "lat": {"policy": "latency", "sites": ["a", "slow"]},
                },
            }
        )
        all_healthy(gw)
        routes = gw.admin("GET", "/admin/routes")["models"]
        assert routes["fo"] == {"policy": "failover", "order": ["c", "a", "b"], "unavailable": {}}
        assert routes["cost"]["order"] == ["b", "c", "a"]
        assert routes["w"]["order"] == ["b", "a", "c"]

        def traffic(model: str, n: int) -> dict[str, int]:
            before = up.served()
            for _ in range(n):
                status, doc = gw.call("POST", f"/v2/models/{model}/infer", ONE_ROW)
                assert status == 200, doc
            after = up.served()
            return {name: after[name] - before[name] for name in after}

        assert traffic("fo", 20) == {"a": 0, "b": 0, "c": 20}
        assert traffic("cost", 20) == {"a": 0, "b": 20, "c": 0}
        weighted = traffic("w", 200)
        assert weighted["c"] == 0  # weight 0: never first while another site is up
        assert 110 < weighted["b"] < 190  # expected 150 (3 of 4), standard deviation ~6
        assert weighted["a"] == 200 - weighted["b"]
        latency = traffic("lat", 200)
        # The slow site is measured once, then gets only the exploration share (~5%, so ~10 of 200).
        assert 0 < slow.inference_hits() < 50
        assert latency["a"] == 200 - slow.inference_hits()
        assert gw.admin("GET", "/admin/routes")["models"]["lat"]["order"] == ["a", "slow"]
        assert gw.sites()["slow"]["ewma_ms"] > gw.sites()["a"]["ewma_ms"]
    finally:
        slow.close()


def test_sigkill_of_a_site_under_load_fails_no_request_and_it_comes_back(
    up: Fleet, gateways: StartGateway
) -> None:
    gw = gateways({"sites": sites(up, "a", "b"), "models": {"logit": {"policy": "latency"}}})
    all_healthy(gw)
    load = Load(gw.port, INFER, orjson.dumps(ONE_ROW), workers=4).start()
    try:
        wait_for("traffic on both sites", lambda: all(s["requests"] > 20 for s in gw.sites().values()))
        up.servers["a"].proc.kill()
        up.servers["a"].proc.wait(10)
        wait_for("site a out of rotation", lambda: gw.state("a") in ("ejected", "unhealthy"), timeout=15)
        done = load.total
        wait_for("more requests while a is down", lambda: load.total > done + 100)
        up.start("a")
        wait_for("site a healthy again", lambda: gw.state("a") == "healthy")
        served = gw.sites()["a"]["requests"]
        wait_for("traffic back on a", lambda: gw.sites()["a"]["requests"] > served + 5)
    finally:
        outcomes = load.stop()
    assert load.failures == [], outcomes
    assert outcomes["200"] > 200


def test_sigterm_drain_of_a_site_under_load_fails_no_request(up: Fleet, gateways: StartGateway) -> None:
    gw = gateways({"sites": sites(up, "a", "b"), "models": {"logit": {"policy": "weighted"}}})
    all_healthy(gw)
    load = Load(gw.port, INFER, orjson.dumps(ONE_ROW), workers=4).start()
    try:
        wait_for("traffic on both sites", lambda: all(s["requests"] > 20 for s in gw.sites().values()))
        server = up.servers["b"]
        server.proc.send_signal(signal.SIGTERM)
        wait_for("site b unhealthy (readiness fails first)", lambda: gw.state("b") == "unhealthy")
        assert server.proc.wait(30) == 0
        done = load.total
        wait_for("more requests after b exited", lambda: load.total > done + 100)
    finally:
        outcomes = load.stop()
    assert load.failures == [], outcomes
    assert gw.admin("GET", "/admin/routes")["models"]["logit"] == {
        "policy": "weighted",
        "order": ["a"],
        "unavailable": {"b": "unhealthy"},
    }


def test_errors_on_traffic_eject_a_site_for_longer_each_time(up: Fleet, gateways: StartGateway) -> None:
    sick = FakeUpstream(503)  # passes health checks, fails every request
    try:
        gw = gateways(
            {
                "sites": [
                    {"name": "sick", "url": sick.url, "priority": 0},
                    {"name": "a", "url": up.url("a"), "priority": 1},
                ],
                "models": {"logit": {"policy": "failover"}},
                "outlier": {"consecutive_errors": 3, "base_ejection_s": 2.0},
            }
        )
        all_healthy(gw)
        # Each request fails on sick, is retried on a: the client sees only 200s.
        assert [gw.call("POST", INFER, ONE_ROW)[0] for _ in range(3)] == [200] * 3
        state = gw.sites()["sick"]
        assert (state["state"], state["ejections"], state["failures"], state["retries"]) == (
            "ejected",
            1,
            3,
            3,
        )
        assert state["last_error"] == "HTTP 503"
        assert gw.call("POST", INFER, ONE_ROW)[0] == 200
        assert sick.inference_hits() == 3  # ejected: the 4th request went straight to a
        wait_for("sick back after its ejection", lambda: gw.state("sick") == "healthy")
        assert [gw.call("POST", INFER, ONE_ROW)[0] for _ in range(3)] == [200] * 3
        state = gw.sites()["sick"]
        assert (state["state"], state["ejections"]) == ("ejected", 2)
        assert state["ejection_remaining_s"] > 2.0  # the second ejection lasts 4 s, twice the first
        metrics = gw.metrics()
        assert metric_sum(metrics, "stratus_gateway_ejections_total", site="sick") == 2
        assert metric_sum(metrics, "stratus_gateway_retries_total", site="sick") == 6
    finally:
        sick.close()


def test_the_retry_budget_bounds_retries_when_every_site_fails(gateways: StartGateway) -> None:
    sick = [FakeUpstream(503), FakeUpstream(503)]
    try:
        gw = gateways(
            {
                "sites": [{"name": "s1", "url": sick[0].url}, {"name": "s2", "url": sick[1].url}],
                "models": {"logit": {"policy": "failover"}},
                "outlier": {"consecutive_errors": 1_000_000},  # keep them in rotation: test the budget
                "retry": {"max_attempts": 3, "budget_ratio": 0.2, "min_retries_per_s": 0.1},
            }
        )
        all_healthy(gw)
        answers = [gw.call("POST", INFER, ONE_ROW) for _ in range(50)]
        assert answers == [(503, {"error": "failing on purpose"})] * 50  # the site's own answer
        retries = sum(s["retries"] for s in gw.sites().values())
        assert sum(f.inference_hits() for f in sick) == 50 + retries
        assert 1 <= retries <= 0.2 * 50 + 0.1 * 10
        # Every request wanted one retry (two sites): those the budget refused are counted.
        assert metric_sum(gw.metrics(), "stratus_gateway_retry_budget_exhausted_total") == 50 - retries
    finally:
        for fake in sick:
            fake.close()


def test_no_healthy_site_is_a_503_that_says_why(gateways: StartGateway) -> None:
    closed = free_port()
    gw = gateways({"sites": [{"name": "dead", "url": f"http://127.0.0.1:{closed}"}], "models": {"logit": {}}})
    status, doc = gw.call("POST", INFER, ONE_ROW)
    assert status == 503
    assert doc["error"].startswith(
        f"no healthy site for model 'logit': dead: failing health checks (refused: connection refused by "
        f"127.0.0.1:{closed})"
    )
    assert gw.call("GET", "/v2/health/ready") == (503, {"ready": False})
    state = gw.sites()["dead"]
    assert (state["state"], state["requests"], state["retries"]) == ("unhealthy", 0, 0)


def test_the_admin_api_needs_the_token_and_drains_and_undrains(up: Fleet, gateways: StartGateway) -> None:
    gw = gateways(
        {
            "sites": [
                {"name": "a", "url": up.url("a"), "priority": 0},
                {"name": "b", "url": up.url("b"), "priority": 1},
            ],
            "models": {"logit": {"policy": "failover"}},
        }
    )
    all_healthy(gw)
    status, doc, headers = gw.call_with_headers("GET", "/admin/sites")
    assert (status, doc) == (401, {"error": "admin API: send Authorization: Bearer <token>"})
    assert headers["www-authenticate"].startswith("Bearer")
    assert gw.call("GET", "/admin/sites", headers={"Authorization": f"Basic {TOKEN}"})[0] == 401
    assert gw.call("GET", "/admin/sites", headers={"Authorization": "Bearer wrong"}) == (
        403,
        {"error": "admin API: wrong token"},
    )
    site = gw.sites()["a"]
    assert {"name", "url", "state", "ewma_ms", "requests", "failures", "retries", "ejections"} <= site.keys()
    assert {"ejected_until", "ejection_remaining_s", "last_check_ms"} <= site.keys()
    assert (site["url"], site["state"]) == (up.url("a"), "healthy")

    drained = gw.admin("POST", "/admin/sites/a/drain")
    assert (drained["name"], drained["state"]) == ("a", "drained")
    assert gw.admin("GET", "/admin/routes")["models"]["logit"]["order"] == ["b"]
    answered_by = Counter(
        gw.call_with_headers("POST", INFER, ONE_ROW)[2]["x-stratus-site"] for _ in range(10)
    )
    assert answered_by == {"b": 10}
    assert gw.admin("POST", "/admin/sites/a/undrain")["state"] == "healthy"
    assert gw.admin("GET", "/admin/routes")["models"]["logit"]["order"] == ["a", "b"]
    assert gw.call_with_headers("POST", INFER, ONE_ROW)[2]["x-stratus-site"] == "a"

    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert gw.call("GET", "/admin/sites/a/drain", headers=auth)[0] == 405
    assert gw.call("POST", "/admin/sites/zz/drain", headers=auth) == (
        404,
        {"error": "no site named 'zz'; sites: a, b"},
    )
    assert TOKEN not in gw.log.read_text()


def test_backends_added_and_removed_live_serve_as_replicas_of_their_site(
    up: Fleet, gateways: StartGateway
) -> None:
    """What `serve scale` does to a gateway: a replica added to site s1 shares s1's traffic (answers
    still name s1), a drained one gets none, a removed one is gone; mistakes are named."""
    gw = gateways(
        {
            "sites": [
                {"name": "s1", "url": up.url("a"), "priority": 0},
                {"name": "s2", "url": up.url("c"), "priority": 1},
            ],
            "models": {"logit": {"policy": "failover"}},
        }
    )
    all_healthy(gw)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    replica = {"name": "s1~2", "site": "s1", "url": up.url("b")}
    status, added = gw.call("POST", "/admin/backends", replica, headers=auth)
    assert (status, added["name"], added["site"], added["priority"]) == (201, "s1~2", "s1", 0)
    assert gw.call("POST", "/admin/backends", replica, headers=auth)[0] == 200  # the same again: no-op
    all_healthy(gw)
    before = up.served()
    answered_by = Counter(
        gw.call_with_headers("POST", INFER, ONE_ROW)[2]["x-stratus-site"] for _ in range(20)
    )
    after = up.served()
    assert answered_by == {"s1": 20}
    assert (after["a"] - before["a"], after["b"] - before["b"]) == (10, 10)  # the replicas take turns
    assert {"s1", "s1~2"} <= set(gw.sites())
    assert gw.sites()["s1~2"]["in_flight"] == 0

    gw.admin("POST", "/admin/sites/s1~2/drain")  # one replica (a scale-down drains it first)
    before = up.served()
    for _ in range(6):
        assert gw.call("POST", INFER, ONE_ROW)[0] == 200
    assert up.served()["b"] == before["b"]
    assert gw.call("DELETE", "/admin/backends/s1~2", headers=auth)[0] == 200
    assert "s1~2" not in gw.sites()
    assert gw.admin("GET", "/admin/routes")["models"]["logit"]["order"] == ["s1", "s2"]

    assert gw.call("DELETE", "/admin/backends/s1~2", headers=auth) == (
        404,
        {"error": "no backend named 's1~2'; backends: s1, s2"},
    )
    assert gw.call("DELETE", "/admin/backends/s1", headers=auth) == (
        409,
        {"error": "'s1' is the last backend of site s1: drain the site instead"},
    )
    status, doc = gw.call("POST", "/admin/backends", {"name": "x", "url": "ftp://h:1"}, headers=auth)
    assert status == 400
    assert doc["error"].startswith("url: Value error, expected http://host:port"), doc
    assert gw.call("POST", "/admin/backends", b"{", headers=auth)[1]["error"].startswith(
        "the body is not JSON"
    )
    moved = {"name": "s2", "url": up.url("a")}
    assert gw.call("POST", "/admin/backends", moved, headers=auth)[0] == 409
    assert gw.call("POST", "/admin/backends", replica)[0] == 401  # no token, no change


def test_the_admin_token_may_come_from_the_environment(up: Fleet, gateways: StartGateway) -> None:
    gw = gateways({"sites": sites(up, "a"), "models": {"logit": {}}}, token_in_env=True)
    assert gw.sites()["a"]["name"] == "a"
    assert gw.call("GET", "/admin/routes", headers={"Authorization": "Bearer nope"})[0] == 403


def test_sigint_stops_the_gateway_with_exit_0(up: Fleet, tmp_path: Path) -> None:
    gw = start_gateway({"sites": sites(up, "a"), "models": {"logit": {}}}, tmp_path)
    gw.proc.send_signal(signal.SIGINT)
    assert gw.proc.wait(30) == 0


def test_a_bad_config_exits_2_naming_the_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        "sites:\n  - {name: a, url: 'http://127.0.0.1:1'}\nmodels:\n  fraud: {policy: fastest}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "stratus.serving.gateway", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {config}:4:")
    assert "models.fraud.policy: Input should be 'failover', 'latency', 'weighted' or 'cost'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_upstream_client_tells_connection_errors_apart_and_reuses_connections() -> None:
    """Refused, reset and timeout are told apart (the gateway retries on each); a keep-alive connection
    the server closed is replaced transparently."""

    async def scenario() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(30)

        async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Answers the first request of each connection; closes on the second without answering,
            # as a server whose keep-alive timeout fired just as the request was sent.
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        async def kind(pool: ConnectionPool) -> str:
            with pytest.raises(UpstreamError) as caught:
                await pool.request(b"GET", b"/v2/health/ready", b"", b"", 0.5)
            return caught.value.kind

        assert await kind(ConnectionPool("127.0.0.1", free_port())) == "refused"
        for handler, expected in ((hang_up, "reset"), (never_answer, "timeout")):
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            assert await kind(ConnectionPool("127.0.0.1", port)) == expected
            server.close()
        server = await asyncio.start_server(one_per_connection, "127.0.0.1", 0)
        pool = ConnectionPool("127.0.0.1", server.sockets[0].getsockname()[1])
        for _ in range(3):
            response = await pool.request(b"POST", b"/v2/models/m/infer", b"", b"{}", 5.0)
            assert (response.status, response.body) == (200, b"ok")
            assert pool.idle == 1
        pool.close()
        server.close()

    asyncio.run(scenario())
