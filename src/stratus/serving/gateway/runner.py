"""Run the gateway on uvicorn (uvloop + httptools) until SIGTERM or SIGINT, then stop cleanly."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn

from stratus.serving.gateway.app import GatewayApp
from stratus.serving.gateway.config import GatewayConfig
from stratus.serving.http_guard import uvicorn_config

__all__ = ["serve"]

log = logging.getLogger("stratus.gateway")


class _Server(uvicorn.Server):
    """uvicorn, except that a stop signal is not re-raised after shutdown: a clean stop exits 0."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # uvicorn records the signal and raises it again once shut down, so the process would die of
        # SIGTERM (exit -15) instead of returning; the second SIGINT still forces the exit.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def serve(config: GatewayConfig) -> bool:
    """Serve ``config`` on ``config.host:config.port`` until SIGTERM/SIGINT and a clean stop; False when
    it could not start (startup failed, e.g. its gRPC port is in use: uvicorn has logged why)."""
    app = GatewayApp(config)
    if config.grpc is not None:
        from stratus.serving.grpc.gateway import attach  # grpcio is imported only when gRPC is configured

        attach(app, config.host, config.grpc.port)
    # server_header off: the answers the gateway passes on are the sites', not the gateway's.
    uv_config = uvicorn_config(app, config.host, config.port, config.limits, server_header=False)
    sites = ", ".join(f"{site.name}={site.url}" for site in config.sites)
    log.info(
        "gateway on http://%s:%d for models %s; sites %s",
        config.host,
        config.port,
        ", ".join(config.models),
        sites,
    )
    server = _Server(uv_config)
    server.run()
    return bool(server.started)
