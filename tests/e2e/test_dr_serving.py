"""A gateway SIGKILLed under load behind the health-checked DNS name: the re-resolving client sees nothing.

The short form of the DR benchmark's gateway drill (``python -m bench.dr``), on folder stores: a model
stored at both sites by ``stratus run``, served with ``stratus serve --gateways 2 --dns-port`` through
the real CLI, steady load from ``ResolvingClient`` threads (and naive ones that resolve once and never
retry) while gateway-2 is killed by its recorded PID. The re-resolving client must see 0 failures, and
the supervisor must bring gateway-2 back on its address, where DNS lists it again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.dr.scenarios import BACK_IN_DNS, RECOVERED, Settings, gateway_drill
from bench.dr.watch import Probe
from bench.dr.world import World, build_world, serve, stop
from stratus.serving.fleet import dns_available
from tests.run_world import one_json, stratus_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dns_available(), reason="this build has no stratus.serving.dns responder"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = build_world(tmp_path_factory.mktemp("dr"), use_sandbox=False)
    try:
        serve(world)
        yield world
    finally:
        stop(world)


def test_a_killed_gateway_costs_the_re_resolving_client_nothing_and_comes_back(world: World) -> None:
    before = one_json(stratus_cli("serve", "status", "--json", cwd=world.folder).stdout)
    victim = next(g for g in before["gateways"] if g["name"] == "gateway-2")

    drill = gateway_drill(world, Settings(threads=2, warmup_s=1.0, settle_s=1.0, timeout_s=90.0))

    resolving, naive = drill.clients["resolving"], drill.clients["naive"]
    assert resolving.failures == 0, resolving.samples
    assert resolving.requests > 0
    assert resolving.retries > 0, "no request met the dead gateway: the kill was not felt"
    assert naive.failures > 0, "a client stuck on the killed gateway's address saw nothing"
    assert drill.killed == [f"gateway-2 on 127.0.0.2 (pid {victim['pid']})"]
    assert drill.milestones[BACK_IN_DNS] is not None, drill.milestones
    assert drill.milestones[RECOVERED] is not None, drill.notes

    status = stratus_cli("serve", "status", "--json", cwd=world.folder)
    assert status.returncode == 0, status.stdout + status.stderr
    gateway = next(g for g in one_json(status.stdout)["gateways"] if g["name"] == "gateway-2")
    assert gateway["state"] == "running"
    assert gateway["pid"] != victim["pid"]
    assert gateway["restarts"] == 1
    assert gateway["url"] == victim["url"]
    assert Probe(world.serve_folder).dns_answer() == {"127.0.0.1", "127.0.0.2"}
