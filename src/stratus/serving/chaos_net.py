"""Cut a site off, or slow its network, under load: a drill on a namespaced copy of the deployment.

A running deployment's processes all listen on loopback in one network namespace, where no fault can
be put on one site's traffic alone (they share ``lo``), and a running process cannot be moved into
another namespace. So this drill starts its own copy of the deployment on the delayed network of
:mod:`stratus.sandbox.wan`: each site's model server (the deployment's model and command line) in a
namespace of its own, and a gateway with the client load in a client namespace. It then cuts the site
off (every frame to or from it lost: a partition) or adds a one-way delay to its link for the window,
heals it, and measures as `kill-site` does. The running deployment is not touched. Needs root.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

from stratus.errors import ConfigError, ServingError
from stratus.private_files import private_dir, write_private
from stratus.sandbox.wan import DelayedNetwork, Host, enter, wan_unavailable_reason
from stratus.serving.chaos import DrillResult, serving_deployment, site_state, wait_for
from stratus.serving.deployment import GATEWAY_MARKER, Deployment
from stratus.serving.fleet import http_ready, log_tail
from stratus.serving.load import LoadCounts, LoadGenerator, sample_request

__all__ = ["MODES", "network_drill"]

MODES = ("partition", "delay")
_GATEWAY_PORT = 8080  # the client namespace is the drill's own: nothing else listens there
# The drill's gateway gives up on a site after this long and retries the request on another site, so a
# request caught on the link when it is cut costs the client latency, not an error.
_UPSTREAM_TIMEOUT_S = 2.0


def network_drill(
    folder: Path,
    site: str,
    *,
    mode: str,
    down_for_s: float,
    delay_ms: float = 0.0,
    concurrency: int = 4,
    warmup_s: float = 1.0,
    settle_s: float = 1.0,
    timeout_s: float = 60.0,
) -> DrillResult:
    """Run the drill on a copy of the deployment recorded in ``folder``; ConfigError where impossible."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}", field="mode")
    reason = wan_unavailable_reason()
    if reason is not None:
        raise ConfigError(f"needs network namespaces, which this machine cannot make: {reason}", field=mode)
    if mode == "delay" and delay_ms <= 0:
        raise ConfigError(f"{delay_ms} is not a delay; expected milliseconds above 0", field="--ms")
    deployment = serving_deployment(folder, site)
    if len(deployment.site_names) < 2:
        raise ConfigError(f"a {mode} drill needs a second serving site to fail over to", field="SITE")
    label = "partition" if mode == "partition" else f"delay +{delay_ms:g} ms each way"
    result = DrillResult(site=site, scope=mode, signal=label, down_for_s=down_for_s)
    logs = private_dir(folder / "chaos-net")
    # One server per site in the copy (a site's first replica: the link, not the replicas, is drilled).
    sites = deployment.site_names
    with DelayedNetwork(hosts=len(sites) + 1, one_way_delay_ms=0, prefix="strchaos") as net:
        client, hosts = net.hosts[0], dict(zip(sites, net.hosts[1:], strict=True))
        servers = {name: _start_server(net, deployment, name, host, logs) for name, host in hosts.items()}
        gateway_url, token = _start_gateway(net, deployment, client, hosts, logs)
        result.killed.append(
            {"role": "link", "name": site, "pid": servers[site].pid, "url": _url(deployment, site, hosts)}
        )
        target = _url(deployment, site, hosts)
        drill = _NetDrill(net, deployment, result, hosts[site], target, gateway_url, token, mode, delay_ms)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                enter(client)  # this thread, and the load threads it starts, are the site's clients
                drill.run(concurrency, warmup_s, settle_s, timeout_s, logs)
            except BaseException as exc:  # handed to the calling thread
                failure.append(exc)

        thread = threading.Thread(target=run, name="chaos-net")
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
    return result


def _url(deployment: Deployment, site: str, hosts: dict[str, Host]) -> str:
    return f"http://{hosts[site].address}:{deployment.sites[site].port}"


def _start_server(
    net: DelayedNetwork, deployment: Deployment, site: str, host: Host, logs: Path
) -> subprocess.Popen[bytes]:
    """The site's server, with its recorded command line, listening on the host's address instead."""
    command = list(deployment.sites[site].command)
    command[command.index("--host") + 1] = host.address
    with open(logs / f"{site}.log", "ab") as log:
        return net.popen(host, command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _start_gateway(
    net: DelayedNetwork, deployment: Deployment, client: Host, hosts: dict[str, Host], logs: Path
) -> tuple[str, str]:
    """The drill's gateway in the client namespace, routing to the copies; its URL and admin token."""
    token = secrets.token_urlsafe(24)
    config = {
        "host": client.address,
        "port": _GATEWAY_PORT,
        "admin_token": token,
        "health": {"interval_s": 0.25},
        "retry": {"upstream_timeout_s": _UPSTREAM_TIMEOUT_S},
        "sites": [
            {
                "name": name,
                "url": _url(deployment, name, hosts),
                "priority": i,
                "cost_per_hour": deployment.sites[name].cost_per_hour,
            }
            for i, name in enumerate(hosts)
        ],
        "models": {deployment.model: {"policy": deployment.policy}},
    }
    path = logs / "gateway.json"
    write_private(path, json.dumps(config, indent=2).encode())
    command = [sys.executable, "-m", GATEWAY_MARKER, "--config", str(path)]
    with open(logs / "gateway.log", "ab") as log:
        net.popen(client, command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return f"http://{client.address}:{_GATEWAY_PORT}", token


class _NetDrill:
    """The measuring half, run from a thread inside the client namespace."""

    def __init__(
        self,
        net: DelayedNetwork,
        deployment: Deployment,
        result: DrillResult,
        host: Host,
        server_url: str,
        gateway_url: str,
        token: str,
        mode: str,
        delay_ms: float,
    ) -> None:
        self.net, self.deployment, self.result, self.host = net, deployment, result, host
        self.server_url = server_url
        self.gateway_url, self.token, self.mode, self.delay_ms = gateway_url, token, mode, delay_ms

    def _state(self, site: str) -> str:
        return site_state(self.gateway_url, self.token, site)

    def _ready(self, start_deadline: float, logs: Path) -> None:
        def all_healthy() -> bool:
            return http_ready(self.gateway_url, timeout_s=0.5) and all(
                self._state(name) == "healthy" for name in self.deployment.sites
            )

        if wait_for(all_healthy, start_deadline, poll_s=0.1) is None:
            raise ServingError(
                "the drill's namespaced copy of the deployment did not come up; gateway log tail:\n"
                + log_tail(logs / "gateway.log"),
                status=500,
            )

    def run(self, concurrency: int, warmup_s: float, settle_s: float, timeout_s: float, logs: Path) -> None:
        """Wait for the copy, load it, break the link for the window, heal, and count."""
        self._ready(time.monotonic() + timeout_s, logs)
        model = self.deployment.model
        body = sample_request(self.gateway_url, model)
        with LoadGenerator([self.gateway_url], f"/v2/models/{model}/infer", body, concurrency) as load:
            time.sleep(warmup_s)
            during = self._outage(timeout_s, load)
            time.sleep(settle_s)
        end = load.counts()
        result = self.result
        result.requests, result.failures = end.requests, end.failures
        result.failures_while_down = during.failures
        result.failures_after = end.failures - during.failures
        result.failure_samples = load.samples

    def _outage(self, timeout_s: float, load: LoadGenerator) -> LoadCounts:
        """Break the link, wait out the window, heal; the load's counts at the end of the window."""
        result, site = self.result, self.result.site
        started = time.monotonic()
        window_end = started + result.down_for_s
        deadline = window_end + timeout_s
        if self.mode == "partition":
            self.net.cut(self.host)
            ejected = wait_for(lambda: self._state(site) != "healthy", deadline)
        else:
            self.net.set_delay(self.host, self.delay_ms)
            sent = time.perf_counter()
            if http_ready(self.server_url, timeout_s=max(5.0, self.delay_ms / 100.0)):
                result.probe_during_ms = round((time.perf_counter() - sent) * 1000.0, 1)
            ejected = wait_for(lambda: self._state(site) != "healthy", window_end)  # it may well not be
        if ejected is not None:
            result.ejected_after_s = round(ejected - started, 3)
        time.sleep(max(0.0, window_end - time.monotonic()))
        window_end = time.monotonic()
        during = load.counts()
        if self.mode == "partition":
            self.net.heal(self.host)
        else:
            self.net.set_delay(self.host, 0)
        back = wait_for(lambda: self._state(site) == "healthy", deadline)
        if back is not None:
            result.back_after_window_s = round(back - window_end, 3)
        return during
