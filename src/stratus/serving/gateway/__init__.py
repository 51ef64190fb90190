"""The global gateway: one Open Inference Protocol endpoint that routes each request to a healthy site.

Modules, one job each: :mod:`.config` (the file), :mod:`.upstream` (the HTTP client and its pools),
:mod:`.health` (site state: active checks, outlier ejection), :mod:`.policies` (site order per model),
:mod:`.retry` (the retry budget), :mod:`.app` (the ASGI app), :mod:`.admin`, :mod:`.metrics`,
:mod:`.runner` (uvicorn). Run it with ``python -m stratus.serving.gateway --config FILE``.
"""

from stratus.serving.gateway.app import GatewayApp
from stratus.serving.gateway.config import (
    GatewayConfig,
    HealthCheck,
    ModelRoute,
    OutlierDetection,
    Upstream,
    UpstreamRetry,
    load_gateway_config,
)
from stratus.serving.gateway.runner import serve

__all__ = [
    "GatewayApp",
    "GatewayConfig",
    "HealthCheck",
    "ModelRoute",
    "OutlierDetection",
    "Upstream",
    "UpstreamRetry",
    "load_gateway_config",
    "serve",
]
