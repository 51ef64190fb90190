"""The ServerApp at the coordinator: FedAvg over every expected site, checked round by round.

``flwr run`` reports success even when a round lost a node, so this app is the judge: it learns which
site each node serves, requires a reply from every expected site in every round, and writes a JSON
journal (rounds, bytes per site, final weights, or the failure naming the sites) that the Stratus runner
reads instead of trusting an exit code. The journal is rewritten after every phase, so a crash still
leaves the rounds that finished.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp

from .model import FloatArray, LinearModel, scaler_from_stats
from .protocol import (
    CONFIG,
    IDENTITY,
    METRICS,
    MODEL,
    STATS,
    get_float,
    get_int,
    get_str,
    message_array_bytes,
    record,
)

__all__ = ["FederationError", "ServerSettings", "app"]

app = ServerApp()


@dataclass(frozen=True)
class ServerSettings:
    """The run config the app understands (keys as in the app's ``pyproject.toml``)."""

    output_path: Path
    num_rounds: int
    expected_nodes: int
    sites: tuple[str, ...]
    local_epochs: int
    learning_rate: float
    batch_size: int
    l2: float
    seed: int
    connect_timeout_s: float
    round_timeout_s: float
    final_evaluate: bool

    @classmethod
    def from_run_config(cls, config: Mapping[str, object]) -> ServerSettings:
        """Parse and check the run config; a wrong value stops the run before any node is contacted."""
        output = get_str(config, "output-path")
        if not output:
            raise ValueError("run config 'output-path' is empty: the runner must say where to write results")
        sites = tuple(s for s in get_str(config, "sites", "").split(",") if s)
        expected = get_int(config, "expected-nodes")
        if expected < 1:
            raise ValueError(f"run config 'expected-nodes' must be at least 1, got {expected}")
        if sites and len(sites) != expected:
            raise ValueError(f"run config lists {len(sites)} sites but expects {expected} nodes")
        final_evaluate = config.get("final-evaluate", True)
        if not isinstance(final_evaluate, bool):
            raise ValueError(f"'final-evaluate' must be true or false, got {final_evaluate!r}")
        return cls(
            output_path=Path(output),
            num_rounds=get_int(config, "num-rounds"),
            expected_nodes=expected,
            sites=sites,
            local_epochs=get_int(config, "local-epochs"),
            learning_rate=get_float(config, "learning-rate"),
            batch_size=get_int(config, "batch-size"),
            l2=get_float(config, "l2"),
            seed=get_int(config, "seed"),
            connect_timeout_s=get_float(config, "connect-timeout"),
            round_timeout_s=get_float(config, "round-timeout"),
            final_evaluate=final_evaluate,
        )


class FederationError(RuntimeError):
    """A phase could not complete at every site: which phase, which round, which sites and why."""

    def __init__(
        self,
        phase: str,
        server_round: int,
        message: str,
        *,
        missing_sites: Sequence[str] = (),
        errors: Mapping[str, str] | None = None,
    ) -> None:
        self.phase = phase
        self.server_round = server_round
        self.missing_sites = sorted(missing_sites)
        self.errors = dict(errors or {})
        super().__init__(message)

    def to_json(self) -> dict[str, Any]:
        """The failure as the journal stores it."""
        return {
            "phase": self.phase,
            "round": self.server_round,
            "message": str(self),
            "missing_sites": self.missing_sites,
            "errors": self.errors,
        }


@dataclass
class _Journal:
    """The JSON result file, written atomically (temp file + rename) so the runner never reads half."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)


@dataclass(frozen=True)
class _Site:
    node_id: int
    name: str
    data_path: str
    num_train: int


@dataclass(frozen=True)
class _Exchange:
    """One message to every node and what came back, with bytes and seconds."""

    replies: dict[str, Message]
    seconds: float
    bytes_sent: dict[str, int]
    bytes_received: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "replies": len(self.replies),
            "sites": sorted(self.replies),
            "seconds": self.seconds,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
        }


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federation and write the journal; raise (failing the Flower run) if any site failed."""
    settings = ServerSettings.from_run_config(context.run_config)
    journal = _Journal(
        settings.output_path,
        {"status": "running", "expected_sites": list(settings.sites), "rounds": []},
    )
    journal.write()
    started = time.monotonic()
    try:
        _federate(grid, settings, journal)
    except FederationError as failure:
        journal.data |= {"status": "failed", "failure": failure.to_json()}
        raise
    except Exception as exc:
        unexpected = FederationError("server", -1, f"{type(exc).__name__}: {exc}")
        journal.data |= {"status": "failed", "failure": unexpected.to_json()}
        raise
    else:
        journal.data["status"] = "completed"
    finally:
        journal.data["seconds"] = time.monotonic() - started
        journal.write()


def _federate(grid: Grid, settings: ServerSettings, journal: _Journal) -> None:
    nodes = _wait_for_nodes(grid, settings.expected_nodes, settings.connect_timeout_s)
    sites, model = _identify(grid, nodes, settings, journal)
    for server_round in range(1, settings.num_rounds + 1):
        exchange = _exchange(grid, sites, model, settings, MessageType.TRAIN, server_round)
        _check_replies(exchange, sites, "train", server_round)
        model = model.with_weights(_fedavg(exchange.replies.values()))
        metrics = {site: _metrics(reply) for site, reply in exchange.replies.items()}
        journal.data["rounds"].append({"round": server_round, **exchange.to_json(), "metrics": metrics})
        journal.data["model"] = model.to_json()
        journal.write()
    if settings.final_evaluate:
        exchange = _exchange(grid, sites, model, settings, MessageType.EVALUATE, settings.num_rounds)
        _check_replies(exchange, sites, "evaluate", settings.num_rounds)
        metrics = {site: _metrics(reply) for site, reply in exchange.replies.items()}
        journal.data["evaluation"] = {**exchange.to_json(), "metrics": metrics}


def _wait_for_nodes(grid: Grid, expected: int, timeout_s: float) -> list[int]:
    """The connected node IDs once ``expected`` are there, or whatever connected by the deadline (the
    caller then names the missing sites)."""
    deadline = time.monotonic() + timeout_s
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= expected or time.monotonic() >= deadline:
            return nodes
        time.sleep(0.5)


def _identify(
    grid: Grid, nodes: list[int], settings: ServerSettings, journal: _Journal
) -> tuple[dict[int, _Site], LinearModel]:
    """Ask every node which site it is and for its column sums; the initial model standardises with the
    pooled statistics, so every site trains on the same scale."""
    started = time.monotonic()
    messages = {n: Message(RecordDict(), dst_node_id=n, message_type=MessageType.QUERY) for n in nodes}
    replies = _by_node(grid.send_and_receive(list(messages.values()), timeout=settings.round_timeout_s))
    seconds = time.monotonic() - started
    names: dict[int, str] = {}
    errors: dict[str, str] = {}
    for node, reply in replies.items():
        if reply.has_error():
            errors[f"node {node}"] = reply.error.reason or f"error code {reply.error.code}"
            continue
        identity = record(reply, IDENTITY, ConfigRecord)
        names[node] = get_str(identity, "site")
        if "error" in identity:
            errors[names[node]] = get_str(identity, "error")
    present = sorted(names.values())
    expected = list(settings.sites) or present
    missing = sorted(set(expected) - set(present))
    unexpected = sorted(set(present) - set(expected))
    duplicated = sorted({s for s in present if present.count(s) > 1})
    if missing or errors or unexpected or duplicated or len(names) < settings.expected_nodes:
        problems = []
        if missing:
            problems.append(f"site(s) {', '.join(missing)} did not reply (not connected or not answering)")
        problems += [f"{site}: {reason}" for site, reason in sorted(errors.items())]
        if unexpected:
            problems.append(f"unexpected site(s) {', '.join(unexpected)} joined")
        if duplicated:
            problems.append(f"site(s) {', '.join(duplicated)} served by more than one node")
        if len(names) < settings.expected_nodes and not missing:
            problems.append(f"only {len(names)} of {settings.expected_nodes} nodes replied")
        raise FederationError("setup", 0, "; ".join(problems), missing_sites=missing, errors=errors)
    columns = {get_str(_identity(r), "feature-columns") for r in replies.values()}
    if len(columns) != 1:
        raise FederationError("setup", 0, f"sites disagree on feature columns: {sorted(columns)}")
    sites: dict[int, _Site] = {}
    count = 0.0
    total: FloatArray = np.zeros(0)
    total_sq: FloatArray = np.zeros(0)
    for node, reply in replies.items():
        stats = record(reply, STATS, ArrayRecord)
        num_train = get_int(record(reply, METRICS, MetricRecord), "num-train")
        sites[node] = _Site(node, names[node], get_str(_identity(reply), "data-path"), num_train)
        count += num_train
        s, sq = stats["sum"].numpy(), stats["sumsq"].numpy()
        total = s if not len(total) else total + s
        total_sq = sq if not len(total_sq) else total_sq + sq
    mean, scale = scaler_from_stats(count, total, total_sq)
    model = LinearModel.initial(columns.pop().split(","), mean, scale)
    by_site = {s.name: s for s in sites.values()}
    journal.data["sites"] = {
        name: {"node_id": s.node_id, "data_path": s.data_path, "num_train": s.num_train}
        for name, s in sorted(by_site.items())
    }
    journal.data["setup"] = {
        "seconds": seconds,
        "bytes_sent": dict.fromkeys(sorted(by_site), 0),  # a query carries no arrays
        "bytes_received": {names[n]: message_array_bytes(r) for n, r in replies.items()},
    }
    journal.write()
    return sites, model


def _identity(reply: Message) -> ConfigRecord:
    return record(reply, IDENTITY, ConfigRecord)


def _by_node(replies: Iterable[Message]) -> dict[int, Message]:
    return {reply.metadata.src_node_id: reply for reply in replies}


def _exchange(
    grid: Grid,
    sites: Mapping[int, _Site],
    model: LinearModel,
    settings: ServerSettings,
    message_type: str,
    server_round: int,
) -> _Exchange:
    """Send the global model to every site and collect what came back within the round timeout."""
    config = ConfigRecord(
        {
            "round": server_round,
            "local-epochs": settings.local_epochs,
            "learning-rate": settings.learning_rate,
            "batch-size": settings.batch_size,
            "l2": settings.l2,
            "seed": settings.seed,
        }
    )
    arrays = {"weights": model.weights, "mean": model.mean, "scale": model.scale}
    messages: dict[int, Message] = {}
    for node in sites:
        content = RecordDict({MODEL: ArrayRecord({k: Array(v) for k, v in arrays.items()}), CONFIG: config})
        messages[node] = Message(
            content, dst_node_id=node, message_type=message_type, group_id=str(server_round)
        )
    started = time.monotonic()
    replies = _by_node(grid.send_and_receive(list(messages.values()), timeout=settings.round_timeout_s))
    seconds = time.monotonic() - started
    return _Exchange(
        replies={sites[n].name: r for n, r in replies.items() if n in sites},
        seconds=seconds,
        bytes_sent={s.name: message_array_bytes(messages[n]) for n, s in sites.items()},
        bytes_received={sites[n].name: message_array_bytes(r) for n, r in replies.items() if n in sites},
    )


def _check_replies(exchange: _Exchange, sites: Mapping[int, _Site], phase: str, server_round: int) -> None:
    """Fail unless every site replied without error, and from the same data it identified with."""
    expected = {s.name: s for s in sites.values()}
    missing = sorted(set(expected) - set(exchange.replies))
    errors = {
        site: reply.error.reason or f"error code {reply.error.code}"
        for site, reply in exchange.replies.items()
        if reply.has_error()
    }
    for site, reply in exchange.replies.items():
        if site not in errors and get_str(_identity(reply), "data-path") != expected[site].data_path:
            errors[site] = f"read {get_str(_identity(reply), 'data-path')}, not {expected[site].data_path}"
    if missing or errors:
        problems = [f"site(s) {', '.join(missing)} did not reply"] if missing else []
        problems += [f"{site}: {reason}" for site, reason in sorted(errors.items())]
        raise FederationError(
            phase,
            server_round,
            "; ".join(problems),
            missing_sites=missing,
            errors=errors,
        )


def _fedavg(replies: Iterable[Message]) -> FloatArray:
    """Average of the sites' weights, each weighted by its number of training examples (FedAvg)."""
    total = 0.0
    weighted: FloatArray | None = None
    for reply in replies:
        n = get_float(_metric_record(reply), "num-examples")
        w = record(reply, MODEL, ArrayRecord)["weights"].numpy().astype(np.float64) * n
        weighted = w if weighted is None else weighted + w
        total += n
    if weighted is None or total <= 0:
        raise FederationError("train", -1, "no site reported any training examples")
    result: FloatArray = weighted / total
    return result


def _metric_record(reply: Message) -> MetricRecord:
    return record(reply, METRICS, MetricRecord)


def _metrics(reply: Message) -> dict[str, float]:
    return {k: float(v) for k, v in _metric_record(reply).items() if isinstance(v, int | float)}
