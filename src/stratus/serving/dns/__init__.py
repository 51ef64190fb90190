"""Health-checked DNS for a deployment's gateways: an authoritative responder, a re-resolving client,
and the equivalent records for Route 53 and Cloudflare.

- :class:`DnsResponder` / ``python -m stratus.serving.dns`` (:func:`responder_command` builds the argv for
  a supervisor): answers the deployment's name with the healthy gateways' addresses only.
- :class:`~stratus.serving.dns.client.ResolvingClient`: HTTP through the name, re-resolving and retrying
  once on another gateway when a connection fails.
- :func:`~stratus.serving.dns.providers.render_route53` and ``render_cloudflare``: the same records for
  real providers, as JSON to apply.
"""

from stratus.serving.dns.cli import build_config, responder_command
from stratus.serving.dns.config import DEFAULT_PORT, DEFAULT_TTL_S, DnsConfig, GatewayAddress, parse_gateway
from stratus.serving.dns.responder import DnsResponder

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TTL_S",
    "DnsConfig",
    "DnsResponder",
    "GatewayAddress",
    "build_config",
    "parse_gateway",
    "responder_command",
]
