"""JSON Schemas of the request bodies of Cloudflare's Load Balancing create calls, written from the API
reference (field names, types, enums, required fields; ``additionalProperties: false`` so a misspelt or
unsupported field fails):

- monitor: https://developers.cloudflare.com/api/resources/load_balancers/subresources/monitors/methods/create/
- pool: https://developers.cloudflare.com/api/resources/load_balancers/subresources/pools/methods/create/
- load balancer: https://developers.cloudflare.com/api/resources/load_balancers/methods/create/

Cross-checked against the request types Cloudflare generates from its OpenAPI document for its Python SDK
(``MonitorCreateParams``, ``PoolCreateParams``, ``LoadBalancerCreateParams``); an origin's weight range
is the OpenAPI schema's ``load-balancing_weight`` (0 to 1, in steps of 0.01).
"""

from __future__ import annotations

from typing import Any

_STRINGS = {"type": "array", "items": {"type": "string"}}
_REGIONS = ["WNAM", "ENAM", "WEU", "EEU", "NSAM", "SSAM", "OC", "ME", "NAF", "SAF", "SAS", "SEAS", "NEAS"]

MONITOR: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "allow_insecure": {"type": "boolean"},
        "consecutive_down": {"type": "integer"},
        "consecutive_up": {"type": "integer"},
        "description": {"type": "string"},
        "expected_body": {"type": "string"},
        "expected_codes": {"type": "string"},
        "follow_redirects": {"type": "boolean"},
        "header": {"type": "object", "additionalProperties": _STRINGS},
        "interval": {"type": "integer"},
        "method": {"type": "string"},
        "path": {"type": "string"},
        "port": {"type": "integer"},
        "probe_zone": {"type": "string"},
        "retries": {"type": "integer"},
        "timeout": {"type": "integer"},
        "type": {"enum": ["http", "https", "tcp", "udp_icmp", "icmp_ping", "smtp"]},
    },
}

_ORIGIN: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "address": {"type": "string"},
        "enabled": {"type": "boolean"},
        "header": {"type": "object", "additionalProperties": False, "properties": {"Host": _STRINGS}},
        "name": {"type": "string"},
        "port": {"type": "integer"},
        "virtual_network_id": {"type": "string"},
        "weight": {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.01},
    },
}

POOL: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "origins"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
        "origins": {"type": "array", "items": _ORIGIN},
        "check_regions": {"type": "array", "items": {"enum": [*_REGIONS, "ALL_REGIONS"]}},
        "description": {"type": "string"},
        "enabled": {"type": "boolean"},
        "latitude": {"type": "number"},
        "longitude": {"type": "number"},
        "load_shedding": {"type": "object"},
        "minimum_origins": {"type": "integer"},
        "monitor": {"type": "string"},
        "monitor_group": {"type": "string"},
        "notification_email": {"type": "string"},
        "notification_filter": {"type": ["object", "null"]},
        "origin_steering": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "policy": {"enum": ["random", "hash", "least_outstanding_requests", "least_connections"]}
            },
        },
    },
}

_POOL_MAP = {"type": "object", "additionalProperties": _STRINGS}

LOAD_BALANCER: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["default_pools", "fallback_pool", "name"],
    "properties": {
        "default_pools": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "fallback_pool": {"type": "string"},
        "name": {"type": "string"},
        "adaptive_routing": {"type": "object"},
        "country_pools": _POOL_MAP,
        "description": {"type": "string"},
        "location_strategy": {"type": "object"},
        "networks": _STRINGS,
        "pop_pools": _POOL_MAP,
        "proxied": {"type": "boolean"},
        "random_steering": {"type": "object"},
        "region_pools": _POOL_MAP,
        "rules": {"type": "array"},
        "session_affinity": {"enum": ["none", "cookie", "ip_cookie", "header", ""]},
        "session_affinity_attributes": {"type": "object"},
        "session_affinity_ttl": {"type": "number"},
        "steering_policy": {
            "enum": [
                "off",
                "geo",
                "random",
                "dynamic_latency",
                "proximity",
                "least_outstanding_requests",
                "least_connections",
                "",
            ]
        },
        "ttl": {"type": "number"},
    },
}
