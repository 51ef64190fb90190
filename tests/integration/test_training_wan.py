"""Cross-site training over a delayed link: every site is a network namespace of a DelayedNetwork.

The loopback tests (test_training_ddp.py, test_federated.py) prove the training code; these prove it
still works when the sites are really apart: each rank or SuperNode can reach its peers only through the
link that holds every frame for ``DELAY_MS``, by the addresses the link gives (10.77.0.x), with gloo on
the namespace's ``eth0``. Nothing is mocked. The only timing asserted is a lower bound that follows from
the link (an all-reduce cannot finish before its peer's data has crossed it), never a duration.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from stratus.sandbox.wan import INTERFACE, DelayedNetwork, wan_unavailable_reason
from stratus.training import Cluster
from stratus.training.federated import run_federated
from tests.integration.training_harness import HERE, Rank, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud-detection"
sys.path.insert(0, str(EXAMPLE))  # the runner puts the pipeline's folder on sys.path the same way

from fraud_data import make_table  # noqa: E402
from fraud_features import build_features  # noqa: E402

_UNAVAILABLE = wan_unavailable_reason()
pytestmark = [
    pytest.mark.slow,  # namespaces, a forwarder, torch ranks and Flower processes
    pytest.mark.skipif(_UNAVAILABLE is not None, reason=f"no delayed WAN here: {_UNAVAILABLE}"),
]

DELAY_MS = 10.0  # one way: a round trip of at least 20 ms, like two nearby regions
WAIT_S = 120.0  # for a rank to finish: start-up on a busy 2-core machine takes seconds, a hang forever
STEPS = {"sync": 24, "lowcomm": 160}
SYNC_EVERY = 8
PORT = 29500  # every namespace has its own ports: nothing else listens there


def _launch_in(net: DelayedNetwork, folder: Path, params: dict[str, Any]) -> list[Rank]:
    """One step worker per host, each in its namespace, rank 0's address as the coordinator.

    The same request and ``STRATUS_*`` environment the runner gives a distributed step (as
    training_harness.launch does on loopback), plus ``GLOO_SOCKET_IFNAME`` so gloo uses the link.
    Released together once both have imported torch, so the rendezvous timeout measures the network.
    """
    coordinator = f"{net.hosts[0].address}:{PORT}"
    sites = tuple(f"site-{chr(ord('a') + r)}" for r in range(len(net.hosts)))
    ranks = []
    for r, host in enumerate(net.hosts):
        cluster = Cluster(r, len(net.hosts), coordinator, sites, sites[r], timeout_s=30.0)
        workdir = folder / f"rank{r}"
        workdir.mkdir(parents=True)
        request = {
            "step": "tiny_step",
            "run_id": "test-wan",
            "entrypoint": "training_harness:tiny_step",
            "python_path": [str(HERE)],
            "inputs": {},
            "outputs": {"record": str(workdir / "out" / "record")},
            "workdir": str(workdir),
            "params": params,
            "result_path": str(workdir / "result.json"),
        }
        (workdir / "request.json").write_text(json.dumps(request))
        env = {
            **os.environ,
            **cluster.env(),
            "GLOO_SOCKET_IFNAME": INTERFACE,
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        log = workdir / "worker.log"
        with open(log, "wb") as out:
            process = net.popen(
                host,
                [sys.executable, "-m", "stratus.executors.worker", str(workdir / "request.json")],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        ranks.append(Rank(r, process, log, workdir))
    for rank in ranks:
        wait_for(rank.workdir / "ready", ranks, WAIT_S)
    (folder / "go").write_text("")
    return ranks


def test_two_ranks_in_separate_namespaces_train_over_the_delayed_link(tmp_path: Path) -> None:
    with DelayedNetwork(hosts=2, one_way_delay_ms=DELAY_MS) as net:
        assert [h.address for h in net.hosts] == ["10.77.0.1", "10.77.0.2"]
        ranks = _launch_in(
            net,
            tmp_path,
            # lowcomm's blocking schedule, identical after every sync (test_training_lowcomm: overlap)
            {"modes": ["sync", "lowcomm"], "steps": STEPS, "sync_every": SYNC_EVERY, "overlap": False},
        )
        codes = [r.wait(WAIT_S) for r in ranks]
        assert codes == [0, 0], "\n\n".join(r.log_text()[-3000:] for r in ranks)
        # Each rank's namespace holds loopback and its own link address only: the peer's address (the
        # coordinator's, for rank 1) was reachable through the delayed link alone.
        for host in net.hosts:
            shown = net.run(host, ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True)
            addresses = sorted(line.split()[3] for line in shown.stdout.splitlines())
            assert addresses == [f"{host.address}/24", "127.0.0.1/8"], shown.stdout
    records = [r.record() for r in ranks]
    for mode in ("sync", "lowcomm"):
        r0, r1 = records[0][mode], records[1][mode]
        assert r0["before"] != r1["before"]  # each rank drew its own weights ...
        assert r0["after"] == r1["after"]  # ... and both end with rank 0's, trained identically
        assert r0["after"] < 0.25 * r0["before"], f"{mode} did not learn: {r0['before']} -> {r0['after']}"
        assert r0["stats"]["world_size"] == r1["stats"]["world_size"] == 2
        synced0 = [(step, digest) for step, is_synced, digest in r0["digests"] if is_synced]
        synced1 = [(step, digest) for step, is_synced, digest in r1["digests"] if is_synced]
        assert synced0 == synced1  # bit-identical parameters after every sync, the last step's included
        assert synced0[-1][0] == STEPS[mode] - 1
    lowcomm = records[0]["lowcomm"]
    assert lowcomm["stats"]["syncs"] == STEPS["lowcomm"] // SYNC_EVERY
    assert [s for s, is_synced, _ in lowcomm["digests"] if is_synced] == list(
        range(SYNC_EVERY - 1, STEPS["lowcomm"], SYNC_EVERY)
    )
    # Causality, not speed: rank 0 cannot finish an all-reduce before rank 1's share, sent once rank 1
    # finished the previous one, has crossed the link, so n all-reduces in a row (one per step in sync
    # mode, plus the final loss) take at least (n - 2) one-way delays however fast the machine is.
    for mode in ("sync", "lowcomm"):
        stats = records[0][mode]["stats"]
        assert stats["seconds"] >= (stats["syncs"] + 1 - 2) * DELAY_MS / 1000, (mode, stats)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two small sites' feature files, from different seeds (as in test_federated.py, smaller)."""
    root = tmp_path_factory.mktemp("sites")
    paths = {}
    for site, rows, seed in (("eu-west", 12_000, 11), ("eu-central", 10_000, 12)):
        (root / site).mkdir()
        paths[site] = root / site / "features.parquet"
        pq.write_table(build_features(make_table(rows, seed), test_fraction=0.25), paths[site])
    return paths


def test_flower_superlink_and_supernodes_in_separate_namespaces(
    sites: dict[str, Path], tmp_path: Path
) -> None:
    """SuperLink (and ``flwr run``, its client) in host 1, one SuperNode per site in hosts 2 and 3: every
    message between coordinator and sites crosses the delayed link."""
    workdir = tmp_path / "run"
    with DelayedNetwork(hosts=3, one_way_delay_ms=DELAY_MS) as net:
        link, *site_hosts = net.hosts
        netns = {h.name: ["ip", "netns", "exec", h.name] for h in net.hosts}
        placement = dict(zip(sorted(sites), site_hosts, strict=True))
        result = run_federated(
            sites,
            workdir=workdir,
            rounds=2,
            run_config={"local-epochs": 2},
            timeout_s=150,
            coordinator_host=link.address,
            coordinator_wrap=netns[link.name],
            wrap={site: netns[host.name] for site, host in placement.items()},
        )
    assert [r.round for r in result.rounds] == [1, 2]
    for record in result.rounds:
        assert record.replies == 2
        assert set(record.sites) == set(sites)
        assert all(record.metrics[site]["num-examples"] > 5_000 for site in sites)
        assert record.seconds >= 2 * DELAY_MS / 1000  # the instructions out and the replies back
    assert result.data_paths == {site: str(path.resolve()) for site, path in sites.items()}
    assert all(result.evaluation[site]["test-auc"] > 0.7 for site in sites)
    # The SuperLink's access log names each client by its address: the SuperNodes reached it from their
    # own hosts across the link (and flwr run from the SuperLink's own namespace).
    served = (workdir / "superlink.log").read_text(errors="replace")
    for host in site_hosts:
        registered = rf'{re.escape(host.address)}:\d+ - "POST /v1/fleet/register-node'
        assert re.search(registered, served), served[-3000:]
    assert re.search(rf'{re.escape(link.address)}:\d+ - "POST /v1/control/start-run', served)
    processes = json.loads((workdir / "processes.json").read_text())
    assert set(processes["processes"]) == {"superlink", "flwr-run", *(f"supernode-{s}" for s in sites)}
