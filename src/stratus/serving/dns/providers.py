"""The responder's records for real DNS providers, as JSON a user applies with the provider's own tools.

- Route 53 (`ChangeResourceRecordSets`_ and `CreateHealthCheck`_): one HTTP health check per gateway on
  its readiness path, and one record per gateway carrying that check: ``weighted`` (equal weights:
  active-active, the default), ``multivalue`` (every healthy address in one answer, like our responder) or
  ``failover`` (exactly two gateways, the first PRIMARY). Route 53 answers as if all were healthy when all
  checks fail, as our responder does.
- Cloudflare Load Balancing (`monitors`_, `pools`_, `load balancers`_): one HTTP monitor, one pool with
  every gateway as an origin (a pool answers with its healthy origins), one DNS-only load balancer on the
  name whose fallback pool is that pool (fail open again).

IDs the provider assigns on creation (health checks, the monitor, the pool) appear as placeholders, e.g.
``{{health-check-id:gw-1}}``, which the commands in the written README replace. Every gateway must have
a public address (neither provider checks loopback or private ranges) and all must share one port (an A
record carries no port).

.. _ChangeResourceRecordSets: https://docs.aws.amazon.com/Route53/latest/APIReference/API_ChangeResourceRecordSets.html
.. _CreateHealthCheck: https://docs.aws.amazon.com/Route53/latest/APIReference/API_CreateHealthCheck.html
.. _monitors: https://developers.cloudflare.com/api/resources/load_balancers/subresources/monitors/methods/create/
.. _pools: https://developers.cloudflare.com/api/resources/load_balancers/subresources/pools/methods/create/
.. _load balancers: https://developers.cloudflare.com/api/resources/load_balancers/methods/create/
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from stratus.errors import ConfigError
from stratus.serving.dns.config import GatewayAddress, parse_gateway, zone_name

__all__ = [
    "cloudflare_placeholder",
    "health_check_placeholder",
    "main",
    "render_cloudflare",
    "render_route53",
    "write_provider_files",
]

Route53Routing = Literal["weighted", "multivalue", "failover"]
HEALTH_PATH = "/v2/health/ready"


def health_check_placeholder(gateway: str) -> str:
    """What stands for a gateway's Route 53 health check ID until CreateHealthCheck returns it."""
    return f"{{{{health-check-id:{gateway}}}}}"


def cloudflare_placeholder(kind: Literal["monitor", "pool"]) -> str:
    """What stands for the Cloudflare monitor's or pool's ID until its create call returns it."""
    return f"{{{{{kind}-id}}}}"


def _check(name: str, gateways: Sequence[GatewayAddress]) -> tuple[str, int]:
    """The name without its final dot and the gateways' one port; ConfigError for what providers refuse."""
    try:
        fqdn = zone_name(name).to_text(omit_final_dot=True)
    except ValueError as exc:
        raise ConfigError(str(exc), field="--name") from None
    if not gateways:
        raise ConfigError("expected at least one gateway", field="--gateway")
    for gateway in gateways:
        if not gateway.ip.is_global:
            raise ConfigError(
                f"gateway {gateway.name} has address {gateway.ip}, which a provider's health checkers "
                "cannot reach (loopback, private, link-local and reserved ranges are refused); give its "
                "public address",
                field="--gateway",
            )
    ports = sorted({g.port for g in gateways})
    if len(ports) > 1:
        raise ConfigError(
            f"gateways listen on ports {', '.join(map(str, ports))}; an A record carries no port, so every "
            "gateway must listen on the same one",
            field="--gateway",
        )
    return fqdn, ports[0]


def render_route53(
    name: str,
    gateways: Sequence[GatewayAddress],
    *,
    routing: Route53Routing = "weighted",
    ttl: int = 60,
    health_path: str = HEALTH_PATH,
    request_interval: Literal[10, 30] = 10,
    failure_threshold: int = 3,
    health_check_ids: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``{"health_checks": {gateway: CreateHealthCheck input}, "change_batch": ChangeBatch}``.

    ``request_interval`` 10 is Route 53's fast checks (30 is the standard price); with the default
    threshold a dead gateway leaves the answers ~30 s after it dies, then ``ttl`` more for caches.
    """
    fqdn, _ = _check(name, gateways)
    if routing == "failover" and len(gateways) != 2:
        raise ConfigError(
            f"failover routing takes exactly two gateways (PRIMARY, SECONDARY), got {len(gateways)}; "
            "use weighted or multivalue for more",
            field="--routing",
        )
    ids = health_check_ids or {}
    health_checks: dict[str, dict[str, Any]] = {}
    changes: list[dict[str, Any]] = []
    for i, gateway in enumerate(gateways):
        config = {
            "IPAddress": str(gateway.ip),
            "Port": gateway.port,
            "Type": "HTTP",
            "ResourcePath": health_path,
            "RequestInterval": request_interval,
            "FailureThreshold": failure_threshold,
        }
        digest = hashlib.sha256(json.dumps([fqdn, gateway.name, config], sort_keys=True).encode()).hexdigest()
        # The same config gives the same reference, so applying twice never creates a second check.
        health_checks[gateway.name] = {
            "CallerReference": f"stratus-{digest[:48]}",
            "HealthCheckConfig": config,
        }
        record: dict[str, Any] = {
            "Name": f"{fqdn}.",
            "Type": "A" if gateway.ip.version == 4 else "AAAA",
            "SetIdentifier": gateway.name,
            "TTL": ttl,
            "ResourceRecords": [{"Value": str(gateway.ip)}],
            "HealthCheckId": ids.get(gateway.name, health_check_placeholder(gateway.name)),
        }
        if routing == "weighted":
            record["Weight"] = 1
        elif routing == "multivalue":
            record["MultiValueAnswer"] = True
        else:
            record["Failover"] = "PRIMARY" if i == 0 else "SECONDARY"
        changes.append({"Action": "UPSERT", "ResourceRecordSet": record})
    comment = f"Stratus: {fqdn} to its healthy gateways ({routing})"
    return {"health_checks": health_checks, "change_batch": {"Comment": comment, "Changes": changes}}


def render_cloudflare(
    name: str,
    gateways: Sequence[GatewayAddress],
    *,
    ttl: int = 30,
    health_path: str = HEALTH_PATH,
    interval: int = 60,
    timeout: int = 5,
    retries: int = 2,
    consecutive_down: int = 2,
    monitor_id: str | None = None,
    pool_id: str | None = None,
) -> dict[str, Any]:
    """``{"monitor": body, "pool": body, "load_balancer": body}`` for the three create calls, in order.

    ``interval`` 60 s is what every plan allows (shorter needs a higher plan); the load balancer is
    DNS-only (``proxied`` false): it answers addresses as our responder does, ``ttl`` seconds each.
    """
    fqdn, port = _check(name, gateways)
    tag = re.sub(r"[^A-Za-z0-9_-]", "-", fqdn)
    monitor = {
        "type": "http",
        "method": "GET",
        "path": health_path,
        "port": port,
        "expected_codes": "200",
        "interval": interval,
        "timeout": timeout,
        "retries": retries,
        "consecutive_down": consecutive_down,
        "consecutive_up": 1,
        "follow_redirects": False,
        "description": f"Stratus gateways of {fqdn}: {health_path}",
    }
    pool = {
        "name": f"{tag}-gateways",
        "description": f"Stratus gateways of {fqdn}",
        "enabled": True,
        "minimum_origins": 1,
        "monitor": monitor_id or cloudflare_placeholder("monitor"),
        "origins": [{"name": g.name, "address": str(g.ip), "enabled": True, "weight": 1} for g in gateways],
        "origin_steering": {"policy": "random"},
    }
    pool_ref = pool_id or cloudflare_placeholder("pool")
    load_balancer = {
        "name": fqdn,
        "description": f"Stratus: {fqdn} to its healthy gateways",
        "default_pools": [pool_ref],
        "fallback_pool": pool_ref,
        "proxied": False,
        "ttl": ttl,
        "steering_policy": "off",
    }
    return {"monitor": monitor, "pool": pool, "load_balancer": load_balancer}


_ROUTE53_README = """\
Route 53 records for {fqdn}: one health check per gateway, then the record sets that use them.

  for gw in {names}; do
    id=$(aws route53 create-health-check --cli-input-json file://health-check-$gw.json \\
         --query HealthCheck.Id --output text)
    sed -i "s/{{{{health-check-id:$gw}}}}/$id/" change-batch.json
  done
  aws route53 change-resource-record-sets --hosted-zone-id YOUR_ZONE_ID --change-batch file://change-batch.json
"""

_CLOUDFLARE_README = """\
Cloudflare load balancer for {fqdn}: a monitor, a pool that uses it, a load balancer on the pool.
Needs an API token with Load Balancing: Monitors and Pools Write and Load Balancers Write.

  api=https://api.cloudflare.com/client/v4; auth="Authorization: Bearer $CLOUDFLARE_API_TOKEN"
  monitor=$(curl -s -H "$auth" -H 'Content-Type: application/json' --data @monitor.json \\
            $api/accounts/$ACCOUNT_ID/load_balancers/monitors | jq -r .result.id)
  sed -i "s/{{{{monitor-id}}}}/$monitor/" pool.json
  pool=$(curl -s -H "$auth" -H 'Content-Type: application/json' --data @pool.json \\
         $api/accounts/$ACCOUNT_ID/load_balancers/pools | jq -r .result.id)
  sed -i "s/{{{{pool-id}}}}/$pool/g" load-balancer.json
  curl -s -H "$auth" -H 'Content-Type: application/json' --data @load-balancer.json \\
       $api/zones/$ZONE_ID/load_balancers
"""


def write_provider_files(
    folder: Path,
    name: str,
    gateways: Sequence[GatewayAddress],
    *,
    providers: Sequence[Literal["route53", "cloudflare"]] = ("route53", "cloudflare"),
    routing: Route53Routing = "weighted",
) -> list[Path]:
    """Write each provider's JSON (and a README with the commands) under ``folder/<provider>/``."""
    fqdn, _ = _check(name, gateways)
    written: list[Path] = []

    def write(path: Path, content: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else json.dumps(content, indent=2) + "\n"
        path.write_text(text, encoding="utf-8")
        written.append(path)

    if "route53" in providers:
        route53 = render_route53(name, gateways, routing=routing)
        for gateway, body in route53["health_checks"].items():
            write(folder / "route53" / f"health-check-{gateway}.json", body)
        write(folder / "route53" / "change-batch.json", route53["change_batch"])
        write(
            folder / "route53" / "README",
            _ROUTE53_README.format(fqdn=fqdn, names=" ".join(route53["health_checks"])),
        )
    if "cloudflare" in providers:
        cloudflare = render_cloudflare(name, gateways)
        for key, filename in (("monitor", "monitor"), ("pool", "pool"), ("load_balancer", "load-balancer")):
            write(folder / "cloudflare" / f"{filename}.json", cloudflare[key])
        write(folder / "cloudflare" / "README", _CLOUDFLARE_README.format(fqdn=fqdn))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stratus.serving.dns.providers --name N --gateway [N=]IP:PORT ... --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m stratus.serving.dns.providers",
        description="Write Route 53 and Cloudflare records equivalent to the Stratus DNS responder.",
    )
    parser.add_argument("--name", required=True, help="the public name, e.g. fraud.example.com")
    parser.add_argument("--gateway", action="append", required=True, metavar="[NAME=]IP:PORT")
    parser.add_argument("--out", type=Path, required=True, help="folder to write route53/ and cloudflare/ in")
    parser.add_argument("--provider", choices=["route53", "cloudflare"], action="append")
    parser.add_argument("--routing", choices=["weighted", "multivalue", "failover"], default="weighted")
    args = parser.parse_args(argv)
    try:
        gateways = [parse_gateway(text, i) for i, text in enumerate(args.gateway, start=1)]
        paths = write_provider_files(
            args.out,
            args.name,
            gateways,
            providers=args.provider or ("route53", "cloudflare"),
            routing=args.routing,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
