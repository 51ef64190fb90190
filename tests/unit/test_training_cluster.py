"""The distributed step's environment contract: what the runner sets, what a rank makes of it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stratus.errors import ExecutorError
from stratus.training.cluster import Cluster, DistributedError

BASE = {
    "STRATUS_RANK": "1",
    "STRATUS_WORLD_SIZE": "3",
    "STRATUS_COORDINATOR": "10.0.0.5:29500",
    "STRATUS_SITES": "gcp-eu-west, aws-eu-central,onprem-eu-gpu",
    "STRATUS_SITE": "aws-eu-central",
    "STRATUS_DIST_TIMEOUT_S": "12.5",
}


def env(**changes: str | None) -> dict[str, str]:
    """BASE with some variables changed (a value) or removed (None)."""
    out = dict(BASE)
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def test_full_environment_parses() -> None:
    cluster = Cluster.from_env(BASE)
    assert cluster == Cluster(
        rank=1,
        world_size=3,
        coordinator="10.0.0.5:29500",
        sites=("gcp-eu-west", "aws-eu-central", "onprem-eu-gpu"),
        site="aws-eu-central",
        timeout_s=12.5,
    )
    assert (cluster.host, cluster.port, cluster.is_coordinator) == ("10.0.0.5", 29500, False)
    assert cluster.describe() == "rank 1/3 (site aws-eu-central)"
    assert cluster.peers() == "rank 0 (gcp-eu-west), rank 2 (onprem-eu-gpu)"


def test_env_round_trips() -> None:
    cluster = Cluster.from_env(BASE)
    assert cluster is not None
    assert Cluster.from_env(cluster.env()) == cluster


def test_no_variables_means_not_distributed() -> None:
    assert Cluster.from_env({}) is None
    assert Cluster.from_env({"STRATUS_SITE": "gcp-eu-west", "PATH": "/bin"}) is None


def test_defaults_site_from_list_and_timeout() -> None:
    cluster = Cluster.from_env(env(STRATUS_SITE=None, STRATUS_DIST_TIMEOUT_S=None))
    assert cluster is not None
    assert (cluster.site, cluster.timeout_s) == ("aws-eu-central", 60.0)


def test_single_rank_world_is_a_cluster() -> None:
    cluster = Cluster.from_env(
        {
            "STRATUS_RANK": "0",
            "STRATUS_WORLD_SIZE": "1",
            "STRATUS_COORDINATOR": "[::1]:1",
            "STRATUS_SITES": "a",
        }
    )
    assert cluster is not None
    assert (cluster.world_size, cluster.host, cluster.port, cluster.is_coordinator) == (1, "::1", 1, True)
    assert cluster.peers() == "none"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"STRATUS_COORDINATOR": None, "STRATUS_SITES": None},
            "STRATUS_RANK, STRATUS_WORLD_SIZE set but STRATUS_COORDINATOR, STRATUS_SITES missing",
        ),
        ({"STRATUS_RANK": "one"}, "STRATUS_RANK='one' is not an integer"),
        ({"STRATUS_WORLD_SIZE": "2.0"}, "STRATUS_WORLD_SIZE='2.0' is not an integer"),
        ({"STRATUS_RANK": "3"}, "rank 3 is outside 0..2 (world size 3)"),
        ({"STRATUS_RANK": "-1"}, "rank -1 is outside 0..2"),
        ({"STRATUS_WORLD_SIZE": "0", "STRATUS_RANK": "0"}, "world size must be at least 1, got 0"),
        ({"STRATUS_SITES": "a,b"}, "2 sites (a, b) for world size 3: give one site per rank"),
        ({"STRATUS_SITES": "a,,c"}, "STRATUS_SITES='a,,c' has an empty site name"),
        (
            {"STRATUS_SITE": "onprem-eu-gpu"},
            "rank 1 runs at site 'onprem-eu-gpu', but the site list puts 'aws-eu-central' at index 1",
        ),
        (
            {"STRATUS_COORDINATOR": "10.0.0.5"},
            "STRATUS_COORDINATOR: coordinator address '10.0.0.5' is not 'host:port'",
        ),
        ({"STRATUS_COORDINATOR": "host:http"}, "coordinator address 'host:http' is not 'host:port'"),
        ({"STRATUS_COORDINATOR": "host:70000"}, "port 1-65535"),
        ({"STRATUS_COORDINATOR": "::1:29500"}, "IPv6 as '[addr]:port'"),
        ({"STRATUS_COORDINATOR": ":29500"}, "coordinator address ':29500' is not 'host:port'"),
        ({"STRATUS_DIST_TIMEOUT_S": "soon"}, "STRATUS_DIST_TIMEOUT_S='soon' is not a number of seconds"),
        ({"STRATUS_DIST_TIMEOUT_S": "0"}, "STRATUS_DIST_TIMEOUT_S='0' must be a positive number of seconds"),
        ({"STRATUS_DIST_TIMEOUT_S": "nan"}, "must be a positive number of seconds"),
    ],
)
def test_malformed_environment_is_named(changes: dict[str, str | None], message: str) -> None:
    with pytest.raises(DistributedError) as raised:
        Cluster.from_env(env(**changes))
    assert message in str(raised.value)
    assert isinstance(raised.value, ExecutorError)  # the runner fails the step like any other


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(DistributedError, match=r"timeout must be a positive number of seconds, got -1"):
        Cluster(0, 1, "h:1", ("a",), "a", -1.0)


def test_cluster_module_does_not_import_torch() -> None:
    """The runner imports it without torch installed; a torch import here would break the runner."""
    code = "import sys, stratus.training.cluster; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
