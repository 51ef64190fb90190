"""Run the Flower app on the Deployment Engine: one SuperLink here, one SuperNode per data site.

Each SuperNode is told only its own site's path, so raw rows never leave the site; what moves is model
weights, column aggregates and metrics, and the result says how many bytes per site. ``flwr run`` exits 0
even when a round lost a node, so success is decided by the ServerApp's JSON journal (every expected site
replied in every round) and by watching the SuperNode processes, never by an exit code. Every process is
stopped on the way out, whatever happened, and the PIDs are written to ``processes.json`` so a caller can
check that none is left.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil

from stratus.errors import ConfigError, ExecutorError
from stratus.processes import free_ports, spawn
from stratus.training.federated.app.stratus_fl.model import LinearModel

__all__ = ["APP_DIR", "FederatedResult", "RoundRecord", "RunConfigValue", "run_federated"]

APP_DIR = Path(__file__).parent / "app"
RunConfigValue = bool | int | float | str
RESERVED_KEYS = frozenset({"output-path", "num-rounds", "expected-nodes", "sites"})
_SITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NO_CONFIG: Mapping[str, RunConfigValue] = MappingProxyType({})
_NO_WRAP: Mapping[str, Sequence[str]] = MappingProxyType({})
_STOP_GRACE_S = 8.0  # SuperNodes shut uvicorn down cleanly in ~5 s on SIGTERM; then SIGKILL
_LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class RoundRecord:
    """One training round as the ServerApp saw it: who replied, how long it took, bytes per site."""

    round: int
    replies: int
    sites: tuple[str, ...]
    seconds: float
    bytes_sent: Mapping[str, int]
    bytes_received: Mapping[str, int]
    metrics: Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class FederatedResult:
    """The global model and the evidence of how it was made: rounds, bytes per site, paths each site read.

    ``seconds`` is the wall clock of :func:`run_federated` (start-up and teardown included);
    ``server_seconds`` is the time inside the ServerApp; ``data_paths`` is what each site reported
    opening, the audit trail for data residency.
    """

    model: LinearModel
    rounds: list[RoundRecord]
    seconds: float
    server_seconds: float
    bytes_sent_per_site: Mapping[str, int]
    bytes_received_per_site: Mapping[str, int]
    data_paths: Mapping[str, str]
    evaluation: Mapping[str, Mapping[str, float]]
    workdir: Path

    @property
    def weights(self) -> npt.NDArray[np.float64]:
        """Coefficients on standardised features, intercept last (see :class:`LinearModel`)."""
        return self.model.weights

    @property
    def seconds_per_round(self) -> float:
        """Mean seconds of a training round at the ServerApp (send, local training, receive)."""
        return sum(r.seconds for r in self.rounds) / len(self.rounds) if self.rounds else math.nan


@dataclass
class _Process:
    name: str
    site: str | None
    popen: subprocess.Popen[bytes]
    log: Path


def run_federated(
    participants: Mapping[str, Path | str],
    *,
    workdir: Path,
    rounds: int,
    run_config: Mapping[str, RunConfigValue] = _NO_CONFIG,
    timeout_s: float = 600,
    coordinator_host: str = "127.0.0.1",
    superlink_host: str | None = None,
    wrap: Mapping[str, Sequence[str]] = _NO_WRAP,
    coordinator_wrap: Sequence[str] = (),
    app_dir: Path = APP_DIR,
) -> FederatedResult:
    """Train the Flower app over ``participants`` (site → its own data file) for ``rounds`` FedAvg rounds.

    The SuperLink binds ``coordinator_host``; SuperNodes dial ``superlink_host`` (default: the same), and
    ``wrap[site]`` prefixes a site's SuperNode command (e.g. ``["ip", "netns", "exec", "ns1"]``), and
    ``coordinator_wrap`` the SuperLink's and ``flwr run``'s (and the probe that waits for the SuperLink to
    listen): ``flwr run`` talks to the SuperLink's API, so when the SuperLink runs in a network namespace
    that this process cannot reach, both must be started there.
    ``run_config`` overrides the app's training settings (``local-epochs``, ``learning-rate``, ...).
    Raises :class:`ExecutorError` naming the site and round that failed, with the processes' log tails.
    """
    started = time.monotonic()
    _check_arguments(participants, rounds, run_config, app_dir)
    workdir = workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    result_path = workdir / "result.json"
    result_path.unlink(missing_ok=True)
    app = workdir / "app"  # a copy: `flwr run` may migrate the app's pyproject.toml in place
    shutil.rmtree(app, ignore_errors=True)
    shutil.copytree(app_dir, app, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    sites = sorted(participants)
    config: dict[str, RunConfigValue] = {
        **run_config,
        "output-path": str(result_path),
        "num-rounds": rounds,
        "expected-nodes": len(sites),
        "sites": ",".join(sites),
    }
    _write_toml(workdir / "run-config.toml", config)
    link_port, *node_ports = free_ports(1 + len(sites))
    link_address = f"{superlink_host or coordinator_host}:{link_port}"
    home = workdir / "flwr-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "stratus"\n\n[superlink.stratus]\n'
        f"address = {json.dumps(f'{_connect_host(coordinator_host)}:{link_port}')}\ninsecure = true\n"
    )
    processes: list[_Process] = []
    try:
        processes.append(
            _start(
                "superlink",
                None,
                [
                    *coordinator_wrap,
                    _executable("flower-superlink"),
                    "--insecure",
                    "--disable-runtime-dependency-installation",
                    "--host",
                    coordinator_host,
                    "--port",
                    str(link_port),
                ],
                workdir,
                home,
            )
        )
        _wait_for_port(
            _connect_host(coordinator_host),
            link_port,
            processes[0],
            deadline=started + 60,
            wrap=coordinator_wrap,
        )
        for site, node_port in zip(sites, node_ports, strict=True):
            node_config = workdir / f"{site}.node.toml"
            _write_toml(node_config, {"site": site, "data-path": str(Path(participants[site]).absolute())})
            # SuperNodes install no dependencies unless --allow-runtime-dependency-installation is given.
            command = [
                *wrap.get(site, ()),
                _executable("flower-supernode"),
                "--insecure",
                "--superlink",
                link_address,
                "--port",
                str(node_port),
                "--node-config",
                str(node_config),
            ]
            processes.append(
                _start(f"supernode-{site}", site, command, workdir, workdir / f"flwr-home-{site}")
            )
        flwr_run = _start(
            "flwr-run",
            None,
            [
                *coordinator_wrap,
                _executable("flwr"),
                "run",
                str(app),
                "stratus",
                "--stream",
                "--run-config",
                str(workdir / "run-config.toml"),
            ],
            workdir,
            home,
        )
        processes.append(flwr_run)
        journal = _wait_for_journal(
            result_path, processes, flwr_run, rounds, timeout_s=timeout_s, started=started
        )
    finally:
        _stop_all(processes, workdir / "processes.json")
    return _result(journal, processes, workdir, time.monotonic() - started)


def _check_arguments(
    participants: Mapping[str, Path | str],
    rounds: int,
    run_config: Mapping[str, RunConfigValue],
    app_dir: Path,
) -> None:
    """Reject what Flower would reject later with a less helpful message (or not at all)."""
    if not participants:
        raise ConfigError("no participants: give at least one site and its data path", field="participants")
    for site in participants:
        if not _SITE_NAME.fullmatch(site):
            raise ConfigError(
                f"site name {site!r} must be letters, digits, '_', '.' or '-' (it names files and logs)",
                field="participants",
            )
    if rounds < 1:
        raise ConfigError(f"rounds must be at least 1, got {rounds}", field="rounds")
    reserved = sorted(RESERVED_KEYS & set(run_config))
    if reserved:
        raise ConfigError(f"run_config keys {reserved} are set by run_federated itself", field="run_config")
    app_file = app_dir / "pyproject.toml"
    try:
        known: dict[str, Any] = tomllib.loads(app_file.read_text())["tool"]["flwr"]["app"]["config"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise ConfigError(
            f"not a Flower app with a [tool.flwr.app.config] table: {exc}", file=str(app_file)
        ) from exc
    unknown = sorted(set(run_config) - set(known))
    if unknown:
        raise ConfigError(
            f"run_config keys {unknown} are not in the app's config; known: {', '.join(sorted(known))}",
            field="run_config",
        )
    for key, value in run_config.items():
        default = known[key]
        # The ServerApp would reject a mistyped value only after every process had started.
        fits = (
            isinstance(value, bool)
            if isinstance(default, bool)
            else not isinstance(value, bool)
            and (
                isinstance(value, int | float)
                if isinstance(default, float)
                else isinstance(value, type(default))
            )
        )
        if not fits:
            raise ConfigError(
                f"run_config {key!r} must be {type(default).__name__} like the app's default {default!r}, "
                f"got {value!r}",
                field="run_config",
            )


def _toml_value(value: RunConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes


def _write_toml(path: Path, values: Mapping[str, RunConfigValue]) -> None:
    """A flat TOML file: Flower takes ``--run-config``/``--node-config`` from a file, which, unlike its
    ``key="value"`` strings, survives paths with spaces or quotes."""
    path.write_text("".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in values.items()))


def _connect_host(host: str) -> str:
    """Where to connect for a server bound to ``host`` (a wildcard bind is reached on loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def _executable(name: str) -> str:
    """A Flower command from this interpreter's environment, so all processes run the same flwr."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        raise ExecutorError(
            f"{name} not found: federated training needs Flower (pip install 'flwr>=1.42,<1.43')"
        )
    return found


def _environment(flwr_home: Path) -> dict[str, str]:
    """The Flower processes' environment: no telemetry or update checks (sites may be offline), Flower's
    own helpers (flower-superexec, flwr-serverapp, flwr-clientapp) on PATH, one BLAS thread each."""
    env = dict(os.environ)
    env |= {
        "FLWR_HOME": str(flwr_home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    }
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def _start(name: str, site: str | None, command: list[str], workdir: Path, flwr_home: Path) -> _Process:
    flwr_home.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    log.unlink(missing_ok=True)
    try:
        popen = spawn(command, log, env=_environment(flwr_home))
    except OSError as exc:
        raise ExecutorError(f"cannot start {name} ({command[0]}): {exc}", site=site) from exc
    return _Process(name, site, popen, log)


def _wait_for_port(
    host: str, port: int, process: _Process, *, deadline: float, wrap: Sequence[str] = ()
) -> None:
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise ExecutorError(
                f"{process.name} exited with code {process.popen.returncode} while starting"
                + _tails([process])
            )
        if _accepts(host, port, wrap):
            return
        time.sleep(0.2)
    raise ExecutorError(f"{process.name} did not listen on {host}:{port} in time" + _tails([process]))


def _accepts(host: str, port: int, wrap: Sequence[str]) -> bool:
    """Whether ``host:port`` accepts a connection, as seen from where ``wrap`` runs a command.

    Without a wrap the connection is tried here. With one (a network namespace) this process may have no
    route to ``host`` at all, so a one-line probe is run through the wrap instead.
    """
    if not wrap:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        return False
    probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=0.5).close()"
    try:
        done = subprocess.run(
            [*wrap, sys.executable, "-c", probe], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _read_journal(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def _wait_for_journal(
    path: Path,
    processes: list[_Process],
    flwr_run: _Process,
    rounds: int,
    *,
    timeout_s: float,
    started: float,
) -> dict[str, Any]:
    """Wait until the ServerApp's journal is final; fail early if a SuperNode or the SuperLink dies.

    ``flwr run`` ending says nothing about success: after it exits the journal gets a short grace to
    become final, and a journal still "running" then is a failure.
    """
    grace_until: float | None = None
    while True:
        journal = _read_journal(path)
        if journal is not None and journal.get("status") != "running":
            return journal
        for process in processes:
            if process is not flwr_run and process.popen.poll() is not None:
                who = f"SuperNode of site {process.site}" if process.site else process.name
                raise ExecutorError(
                    f"{who} exited with code {process.popen.returncode} {_progress(journal, rounds)}"
                    + _tails([process, *(p for p in processes if p is not process)]),
                    site=process.site,
                )
        now = time.monotonic()
        if grace_until is None and flwr_run.popen.poll() is not None:
            grace_until = now + 10.0
        if grace_until is not None and now >= grace_until:
            raise ExecutorError(
                f"flwr run exited with code {flwr_run.popen.returncode} but the ServerApp wrote no final "
                f"result to {path}" + _tails(processes)
            )
        if now >= started + timeout_s:
            raise ExecutorError(
                f"federated run did not finish in time: stopped {_progress(journal, rounds)}"
                + _tails(processes)
            )
        time.sleep(0.2)


def _progress(journal: dict[str, Any] | None, rounds: int) -> str:
    """Where the run was, from the journal: "before the sites were identified", "in round 2 of 3"."""
    if journal is None:
        return "before the ServerApp started"
    if "sites" not in journal:
        return "before every site was identified (setup)"
    done = len(journal.get("rounds", []))
    return f"in round {done + 1} of {rounds}" if done < rounds else "in the final evaluation"


def _result(
    journal: dict[str, Any], processes: list[_Process], workdir: Path, seconds: float
) -> FederatedResult:
    """The result from a final journal, or the journal's failure as an ExecutorError naming the sites."""
    if journal.get("status") != "completed":
        failure: dict[str, Any] = journal.get("failure") or {}
        named = set(failure.get("missing_sites", [])) | set(failure.get("errors", {}))
        involved = [p for p in processes if p.site in named or p.site is None]
        site = next(iter(named)) if len(named) == 1 else None
        where = failure.get("phase", "?")
        if failure.get("round", 0) > 0:
            where += f" round {failure['round']}"
        raise ExecutorError(
            f"federated run failed in {where}: {failure.get('message', 'no failure recorded')}"
            + _tails(involved),
            site=site,
        )
    rounds = [
        RoundRecord(
            round=r["round"],
            replies=r["replies"],
            sites=tuple(r["sites"]),
            seconds=r["seconds"],
            bytes_sent=r["bytes_sent"],
            bytes_received=r["bytes_received"],
            metrics=r["metrics"],
        )
        for r in journal["rounds"]
    ]
    phases = [journal.get("setup", {}), *journal["rounds"], journal.get("evaluation", {})]
    sent: dict[str, int] = {}
    received: dict[str, int] = {}
    for phase in phases:
        for site, n in phase.get("bytes_sent", {}).items():
            sent[site] = sent.get(site, 0) + n
        for site, n in phase.get("bytes_received", {}).items():
            received[site] = received.get(site, 0) + n
    return FederatedResult(
        model=LinearModel.from_json(journal["model"]),
        rounds=rounds,
        seconds=seconds,
        server_seconds=journal.get("seconds", math.nan),
        bytes_sent_per_site=sent,
        bytes_received_per_site=received,
        data_paths={site: info["data_path"] for site, info in journal.get("sites", {}).items()},
        evaluation=journal.get("evaluation", {}).get("metrics", {}),
        workdir=workdir,
    )


def _tails(processes: Sequence[_Process]) -> str:
    parts = []
    for process in processes:
        try:
            text = _ANSI.sub("", process.log.read_text(errors="replace"))  # Flower colours even files
            lines = text.splitlines()[-_LOG_TAIL_LINES:]
        except OSError:
            lines = ["(no log)"]
        parts.append(f"\n--- {process.log} (last {len(lines)} lines) ---\n" + "\n".join(lines))
    return "".join(parts)


def _stop_all(processes: list[_Process], record: Path) -> None:
    """SIGTERM every process group and every descendant (Flower detaches some helpers into sessions of
    their own), SIGKILL what is left after a grace period, and record every PID seen."""
    targets: dict[int, psutil.Process] = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(process.popen.pid)
            targets[parent.pid] = parent
            targets |= {child.pid: child for child in parent.children(recursive=True)}
    record.write_text(
        json.dumps(
            {
                "processes": {p.name: p.popen.pid for p in processes},
                "all_pids": sorted(targets),
            },
            indent=1,
        )
    )
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.popen.pid, sig)
        for target in targets.values():
            with contextlib.suppress(psutil.Error):
                target.send_signal(sig)
        _, alive = psutil.wait_procs(
            list(targets.values()), timeout=_STOP_GRACE_S if sig == signal.SIGTERM else 5
        )
        targets = {p.pid: p for p in alive}
        if not targets:
            break
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=5)
