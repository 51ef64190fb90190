"""The Flower case: ``run_federated`` over two sites against ``local_baseline`` on the same rows.

The SuperLink (and ``flwr run``, which talks to it) runs in host 1 of a three-host
:class:`DelayedNetwork`, each site's SuperNode in hosts 2 and 3, so every message between coordinator and
sites crosses the link; with no network (not root) everything runs on loopback instead. The baseline
trains the same numpy model, in this process, for rounds × local epochs on the union of the sites' rows:
what federation costs is the difference.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from stratus.errors import StratusError
from stratus.sandbox.wan import DelayedNetwork
from stratus.training.federated import FederatedResult, local_baseline, run_federated
from stratus.training.federated.app.stratus_fl.model import auc, load_site

__all__ = ["FlowerResult", "run_flower"]


@dataclass
class FlowerResult:
    """One federated run and the baseline it is compared with; ``error`` set when the run failed."""

    label: str
    rtt_ms: float | None  # None: loopback, no delayed network
    rounds: int
    local_epochs: int
    seconds_per_round: float | None = None  # ServerApp's mean: send, local training, receive
    site_train_s_per_round: float | None = None  # the slower site's local training, mean over rounds
    wall_s: float | None = None  # run_federated: start-up, setup round, training rounds, evaluation, stop
    auc: float | None = None  # the global model on the union of the sites' test rows
    bytes_per_site: int | None = None  # sent plus received, mean over sites, as the ServerApp counted
    all_replied: bool | None = None
    baseline_s: float | None = None  # local_baseline: load plus train
    baseline_train_s: float | None = None
    baseline_auc: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class _Placement:
    """Where the coordinator listens and the commands that put it and each site's SuperNode in place."""

    coordinator_host: str
    coordinator_wrap: list[str]
    site_wraps: list[list[str]]


@contextlib.contextmanager
def _placement(one_way_delay_ms: float | None, sites: int) -> Iterator[_Placement]:
    """Three namespaces (coordinator, then one per site), or loopback when ``one_way_delay_ms`` is None."""
    if one_way_delay_ms is None:
        yield _Placement("127.0.0.1", [], [[] for _ in range(sites)])
        return
    with DelayedNetwork(hosts=1 + sites, one_way_delay_ms=one_way_delay_ms, prefix="strbench") as net:
        link, *site_hosts = net.hosts
        yield _Placement(
            link.address,
            ["ip", "netns", "exec", link.name],
            [["ip", "netns", "exec", h.name] for h in site_hosts],
        )


def _union_auc(result: FederatedResult, paths: list[Path]) -> float:
    sites = [load_site(p) for p in paths]
    x = np.vstack([s.x_test for s in sites])
    y = np.concatenate([s.y_test for s in sites])
    return auc(y, result.model.predict_proba(x))


def run_flower(
    folder: Path,
    sites: dict[str, Path],
    *,
    rounds: int,
    local_epochs: int,
    one_way_delay_ms: float | None,
    label: str,
) -> FlowerResult:
    """One federated run (``rounds`` rounds of ``local_epochs``) and its local baseline."""
    rtt = None if one_way_delay_ms is None else 2 * one_way_delay_ms
    out = FlowerResult(label, rtt, rounds, local_epochs)
    names = sorted(sites)
    try:
        with _placement(one_way_delay_ms, len(names)) as where:
            result = run_federated(
                {s: sites[s] for s in names},
                workdir=folder / label.replace(" ", "-"),
                rounds=rounds,
                run_config={"local-epochs": local_epochs},
                timeout_s=300,
                coordinator_host=where.coordinator_host,
                coordinator_wrap=where.coordinator_wrap,
                wrap={s: w for s, w in zip(names, where.site_wraps, strict=True) if w},
            )
    except StratusError as exc:
        out.error = str(exc).split("\n---")[0]
        return out
    out.seconds_per_round = result.seconds_per_round
    out.site_train_s_per_round = float(
        np.mean([max(r.metrics[s]["train-seconds"] for s in names) for r in result.rounds])
    )
    out.wall_s = result.seconds
    out.all_replied = all(r.replies == len(names) and set(r.sites) == set(names) for r in result.rounds)
    out.bytes_per_site = round(
        np.mean([result.bytes_sent_per_site[s] + result.bytes_received_per_site[s] for s in names])
    )
    out.auc = _union_auc(result, [sites[s] for s in names])
    started = time.perf_counter()
    with threadpool_limits(1):  # one BLAS thread, as each SuperNode's ClientApp has (runner's environment)
        baseline = local_baseline([sites[s] for s in names], epochs=rounds * local_epochs)
    out.baseline_s = time.perf_counter() - started
    out.baseline_train_s = baseline.train_seconds
    out.baseline_auc = baseline.test_auc
    return out
