"""The disaster-recovery drill: take a site down under load (its server, its store, or all of it), keep it
down for a window, bring it back, and measure how the fleet heals.

What users need to know before a region really goes down: do clients see errors (they must not, while
one front door and one site survive), how long the gateway takes to stop sending to the dead site, and
how long after the site is back it is used again. The drill drives steady load through the gateways
(:mod:`.load`), kills what the scope names at once (the site's server: SIGKILL, a crash, or SIGTERM, a
drain; its object store's server on the sandbox; gateways named for the site), keeps them down for
``down_for_s`` with a hold the supervisor honours (:mod:`.holds`), then releases them and times each
phase from the gateway's admin API, the server's own readiness and the store's first real write.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stratus.config import load_platform
from stratus.errors import ConfigError, ServingError
from stratus.processes import is_running
from stratus.sandbox.outage import SandboxStore, bring_back, find_site_store, refuses_connections, take_down
from stratus.serving.chaos_targets import Target, gateway_targets, server_target, site_gateways
from stratus.serving.deployment import SUPERVISOR_MARKER, Deployment, load_deployment
from stratus.serving.fleet import http_ready
from stratus.serving.gateway_client import site_states
from stratus.serving.holds import hold, release
from stratus.serving.load import LoadCounts, LoadGenerator, sample_request

__all__ = ["SCOPES", "DrillResult", "kill_site", "serving_deployment", "site_state", "wait_for"]

SCOPES = ("server", "storage", "site")
# A hold outlives the window by this much, so a drill that dies mid-way cannot keep a site down for ever
# (the drill releases it itself at the end of the window).
_HOLD_GRACE_S = 30.0
_NOT_PER_SITE = (
    "gateways are not per-site (each routes to every site), so none was taken down with the site; "
    "name one with --gateway to count it as this site's front door"
)


@dataclass
class StoreOutage:
    """What happened to the site's object store: killed, refused while down, back, objects intact."""

    kind: str
    endpoint: str
    pid_killed: int
    pid_after: int | None = None
    refused_while_down: bool = False
    back_after_s: float | None = None  # from the end of the window to its first real write
    objects_before: int = 0
    objects_after: int | None = None
    intact: bool | None = None  # the same keys with the same sizes after as before


@dataclass
class DrillResult:
    """What the drill saw; times in seconds, None when the phase did not happen within the timeout."""

    site: str
    scope: str = "server"
    signal: str = "SIGKILL"
    down_for_s: float = 0.0
    requests: int = 0
    failures: int = 0
    failures_while_down: int = 0
    failures_after: int = 0
    retried_on_another_gateway: int = 0
    failure_samples: list[str] = field(default_factory=list)
    expect_no_failures: bool = True
    killed: list[dict[str, Any]] = field(default_factory=list)
    ejected_after_s: float | None = None
    restarted_after_s: float | None = None
    back_in_rotation_after_s: float | None = None
    back_after_window_s: float | None = None  # end of the window → site back in rotation
    gateways_back_after_s: dict[str, float | None] = field(default_factory=dict)
    # delay: one health check straight to the site's server during the window, in ms (the fault is real)
    probe_during_ms: float | None = None
    store: StoreOutage | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def server_killed(self) -> bool:
        """Whether the drill took the site's model server down."""
        return any(k["role"] == "server" for k in self.killed)

    @property
    def passed(self) -> bool:
        """No unexpected client failure, and everything taken down was seen down and came back."""
        checks = [not self.expect_no_failures or self.failures == 0]
        if self.server_killed:
            checks += [
                self.ejected_after_s is not None,
                self.restarted_after_s is not None,
                self.back_in_rotation_after_s is not None,
            ]
        if self.store is not None:
            checks += [
                self.store.refused_while_down,
                self.store.back_after_s is not None,
                bool(self.store.intact),
            ]
        checks += [value is not None for value in self.gateways_back_after_s.values()]
        if self.scope == "partition":
            checks += [self.ejected_after_s is not None, self.back_after_window_s is not None]
        return all(checks)

    def to_json(self) -> dict[str, Any]:
        """The result for `--json`."""
        return {**asdict(self), "passed": self.passed}


def wait_for(condition: Callable[[], bool], deadline: float, poll_s: float = 0.02) -> float | None:
    """Poll ``condition()`` until true; the monotonic time it first held, or None past ``deadline``."""
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(poll_s)
    return None


def site_state(url: str | None, token: str, site: str) -> str:
    """The site's state as the gateway at ``url`` sees it; "unknown" when it does not answer."""
    if url is None:
        return "unknown"
    try:
        return str(site_states(url, token, 1.0)[site]["state"])
    except (ServingError, KeyError):
        return "unknown"


def serving_deployment(folder: Path, site: str) -> Deployment:
    """The running deployment recorded in ``folder``, which must serve from ``site``; else why not."""
    deployment = load_deployment(folder)
    if deployment is None or not deployment.ready:
        raise ServingError("no deployment is running here: start one with `stratus serve`", status=400)
    if site not in deployment.site_names:
        known = ", ".join(deployment.site_names)
        raise ServingError(
            f"site {site!r} serves nothing in this deployment; it serves from {known}", status=400
        )
    return deployment


def _running_deployment(folder: Path, site: str) -> Deployment:
    deployment = serving_deployment(folder, site)
    if not is_running(deployment.supervisor_pid, SUPERVISOR_MARKER):
        raise ServingError(
            "the deployment's supervisor is not running, so nothing would restart the site: "
            "start the deployment again with `stratus serve`",
            status=400,
        )
    return deployment


def _site_store(platform_file: Path, site: str) -> SandboxStore:
    platform = load_platform(platform_file)
    if site not in platform.sites:
        raise ConfigError(
            f"unknown site {site!r}; the platform's sites are {', '.join(platform.sites)}",
            file=str(platform_file),
            field="SITE",
        )
    record = platform.sites[site]
    return find_site_store(platform_file, site, record.storage, record.storage_options)


def _back(folder: Path, target: Target) -> bool:
    """True once the supervisor restarted ``target`` (a new PID in the record) and it answers ready."""
    current = load_deployment(folder)
    if current is None:
        return False
    if target.role == "server":
        now = server_target(current, target.name)
    else:
        now = next((g for g in gateway_targets(current) if g.name == target.name), target)
    return now.pid != target.pid and now.alive() and http_ready(now.url, timeout_s=0.5)


def kill_site(
    folder: Path,
    site: str,
    *,
    scope: str = "server",
    platform_file: Path | None = None,
    sig: signal.Signals = signal.SIGKILL,
    down_for_s: float = 0.0,
    gateways: list[str] | None = None,
    concurrency: int = 4,
    warmup_s: float = 1.0,
    settle_s: float = 1.0,
    timeout_s: float = 60.0,
) -> DrillResult:
    """Run the drill against the deployment recorded in ``folder`` (and the sandbox store of ``site``).

    Refuses (ConfigError, exit 2) what it cannot honestly break: a folder store, a store that is not a
    sandbox server, ``--gateway`` outside the site scope.
    """
    if scope not in SCOPES:
        raise ConfigError(f"unknown scope {scope!r}; expected one of {', '.join(SCOPES)}", field="--scope")
    if gateways and scope != "site":
        raise ConfigError("names a site's gateways, so it goes with --scope site", field="--gateway")
    if down_for_s < 0:
        raise ConfigError(f"{down_for_s} is negative; expected seconds, 0 or more", field="--for")
    store = None
    if scope in ("storage", "site"):
        if platform_file is None:
            raise ConfigError("a storage drill needs the platform file", field="--platform")
        store = _site_store(platform_file, site)
    deployment = _running_deployment(folder, site) if scope != "storage" else load_deployment(folder)
    if deployment is not None and not deployment.ready:
        deployment = None
    result = DrillResult(site=site, scope=scope, signal=sig.name, down_for_s=down_for_s)
    server = server_target(deployment, site) if deployment is not None and scope != "storage" else None
    doors: list[Target] = []
    if deployment is not None and scope == "site":
        doors = site_gateways(deployment, site, gateways or [])
        if not doors:
            result.notes.append(_NOT_PER_SITE)
    if server is not None and deployment is not None and len(deployment.replicas(site)) > 1:
        result.notes.append(
            f"site {site} runs {len(deployment.replicas(site))} model servers: the drill takes down its "
            f"first ({server.name}); the other replicas keep serving the site"
        )
    every_gateway = gateway_targets(deployment) if deployment is not None else []
    survivors = [g for g in every_gateway if g not in doors]
    result.expect_no_failures = bool(survivors) or deployment is None
    if deployment is None:
        result.notes.append("no deployment is running, so no load was sent: the store alone was drilled")
    drill = _Drill(folder, deployment, result, server, doors, store, survivors, sig)
    keys = drill.hold_keys() if down_for_s > 0 else []
    if keys:
        hold(folder, keys, down_for_s + _HOLD_GRACE_S)
    try:
        drill.run(concurrency, warmup_s, settle_s, timeout_s)
    finally:
        release(folder, keys)  # also when interrupted: the supervisor brings the site back
        if store is not None and result.store is not None and result.store.back_after_s is None:
            bring_back(store)
    return result


@dataclass
class _Drill:
    """One drill's targets and result; ``run`` kills, waits out the window, brings back, measures."""

    folder: Path
    deployment: Deployment | None
    result: DrillResult
    server: Target | None
    doors: list[Target]
    store: SandboxStore | None
    survivors: list[Target]
    sig: signal.Signals

    def hold_keys(self) -> list[str]:
        """The supervisor's keys of the processes this drill keeps down."""
        return [t.hold_key for t in ([self.server] if self.server else []) + self.doors]

    @property
    def watch(self) -> str | None:
        """A gateway that stays up, to watch the site's state from."""
        return self.survivors[0].url if self.survivors else None

    def _site_state(self) -> str:
        token = self.deployment.admin_token if self.deployment is not None else ""
        assert self.server is not None
        return site_state(self.watch, token, self.server.name)

    def run(self, concurrency: int, warmup_s: float, settle_s: float, timeout_s: float) -> None:
        """Load (when a deployment runs), kill, hold for the window, bring back, and count."""
        load: LoadGenerator | None = None
        if self.deployment is not None:
            model = self.deployment.model
            body = sample_request(self.watch or self.deployment.gateway_url, model)
            urls = [g.url for g in [*self.survivors, *self.doors]]
            load = LoadGenerator(urls, f"/v2/models/{model}/infer", body, concurrency)
            load.__enter__()
        try:
            time.sleep(warmup_s if load is not None else 0.0)
            during = self._outage(timeout_s, load)
            if load is not None:
                time.sleep(settle_s)
        finally:
            if load is not None:
                load.__exit__()
        if load is not None:
            end = load.counts()
            result = self.result
            result.requests, result.failures = end.requests, end.failures
            result.retried_on_another_gateway = end.retried
            result.failures_while_down = during.failures
            result.failures_after = end.failures - during.failures
            result.failure_samples = load.samples

    def _outage(self, timeout_s: float, load: LoadGenerator | None) -> LoadCounts:
        """Kill, wait out the window, bring back; the load's counts at the end of the window."""
        result, store, server = self.result, self.store, self.server
        objects_before = store.objects() if store is not None else {}
        killed_at = time.monotonic()
        deadline = killed_at + result.down_for_s + timeout_s
        if store is not None:
            result.store = StoreOutage(store.server.kind, store.server.endpoint, take_down(store))
            result.store.objects_before = len(objects_before)
            result.killed.append({"role": "store", "name": store.name, "pid": result.store.pid_killed,
                                  "url": store.server.endpoint})  # fmt: skip
        for door in self.doors:
            _signal(door, signal.SIGKILL)
            result.killed.append(door.to_json())
        if server is not None:
            _signal(server, self.sig)
            result.killed.append(server.to_json())
            ejected = wait_for(lambda: self._site_state() != "healthy", deadline)
            if ejected is not None:
                result.ejected_after_s = round(ejected - killed_at, 3)
        if store is not None and result.store is not None:
            result.store.refused_while_down = refuses_connections(store)
        time.sleep(max(0.0, killed_at + result.down_for_s - time.monotonic()))
        window_end = time.monotonic()
        during = load.counts() if load is not None else LoadCounts(0, 0, 0)
        release(self.folder, self.hold_keys())
        # The store comes back (seconds, for SeaweedFS) while the server's return is timed, not before it.
        restoring = None
        if store is not None:
            restoring = threading.Thread(target=self._store_back, args=(window_end, objects_before))
            restoring.start()
        try:
            if server is not None:
                self._server_back(killed_at, window_end, deadline)
            for door in self.doors:
                back = wait_for(functools.partial(_back, self.folder, door), deadline)
                result.gateways_back_after_s[door.name] = (
                    None if back is None else round(back - window_end, 3)
                )
        finally:
            if restoring is not None:
                restoring.join()
        return during

    def _store_back(self, window_end: float, objects_before: dict[str, int]) -> None:
        """Start the store's server again, time its first real write, and compare its objects."""
        store, outage = self.store, self.result.store
        assert store is not None
        assert outage is not None
        bring_back(store)
        outage.back_after_s = round(time.monotonic() - window_end, 3)
        outage.pid_after = store.server.pid
        after = store.objects()
        outage.objects_after = len(after)
        outage.intact = after == objects_before

    def _server_back(self, killed_at: float, window_end: float, deadline: float) -> None:
        assert self.server is not None
        server, result = self.server, self.result
        ready = wait_for(lambda: _back(self.folder, server), deadline)
        if ready is None:
            return
        result.restarted_after_s = round(ready - killed_at, 3)
        back = wait_for(lambda: self._site_state() == "healthy", deadline)
        if back is not None:
            result.back_in_rotation_after_s = round(back - ready, 3)
            if result.down_for_s > 0:
                result.back_after_window_s = round(back - window_end, 3)


def _signal(target: Target, sig: signal.Signals) -> None:
    """Signal ``target`` if its PID is still that process (never a stranger that reused the PID)."""
    if target.alive():
        os.kill(target.pid, sig)
