"""The supervisor honours a drill's hold: a held server stays down, and is restarted once released.

Real model servers and the real gateway, started by :class:`stratus.serving.fleet.Fleet` with a short
restart delay, so a supervisor that ignored the hold would have restarted the server many times over.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from stratus.processes import free_ports
from stratus.serving.fleet import Fleet, FleetOptions, http_ready
from stratus.serving.holds import hold, release, server_key
from tests.integration.serving_harness import make_logit

pytestmark = pytest.mark.slow


def test_a_held_server_stays_down_until_released(tmp_path: Path) -> None:
    model = make_logit(tmp_path / "logit.onnx")
    folder = tmp_path / "serve"
    (port,) = free_ports(1)
    options = FleetOptions(gateway_port=port, restart_delay_s=0.05, drain_s=0.5)
    fleet = Fleet("logit", "test", {"a": model, "b": model}, {}, folder, options)
    deployment = fleet.start()
    stop = threading.Event()
    supervisor = threading.Thread(target=fleet.supervise, args=(stop,), daemon=True)
    supervisor.start()
    try:
        site = deployment.sites["a"]
        killed = site.pid
        hold(folder, [server_key("a")], 60)
        os.kill(killed, signal.SIGKILL)
        time.sleep(1.0)  # twenty restart delays
        assert site.restarts == 0
        assert site.pid == killed
        assert not http_ready(site.url, timeout_s=0.2)
        assert deployment.sites["b"].restarts == 0
        release(folder, [server_key("a")])
        deadline = time.monotonic() + 30
        while not (site.pid != killed and http_ready(site.url, timeout_s=0.2)):
            assert time.monotonic() < deadline, "the released server was not restarted"
            time.sleep(0.05)
        assert site.restarts == 1
    finally:
        stop.set()
        supervisor.join()
        fleet.stop()
