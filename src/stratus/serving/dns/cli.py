"""The responder's command line: ``python -m stratus.serving.dns --name NAME --gateway [N=]IP:PORT ...``.

Runs the health-checked DNS responder until SIGTERM/SIGINT (exit 0). A bad flag exits 2 with a message
naming it; a port that cannot be bound exits 2 saying why.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from stratus.errors import ConfigError
from stratus.serving.dns.config import DEFAULT_PORT, DEFAULT_TTL_S, DnsConfig, parse_gateway, parse_listen
from stratus.serving.dns.responder import run
from stratus.serving.gateway.config import HealthCheck

__all__ = ["build_config", "main", "responder_command"]


def _parser() -> argparse.ArgumentParser:
    defaults = HealthCheck()
    parser = argparse.ArgumentParser(
        prog="python -m stratus.serving.dns",
        description="Authoritative DNS for a deployment's name: the addresses of its healthy gateways.",
    )
    parser.add_argument("--name", required=True, help="the name to serve, e.g. fraud.stratus.local")
    parser.add_argument(
        "--gateway",
        action="append",
        required=True,
        metavar="[NAME=]IP:PORT",
        help="a gateway to health-check and answer with (repeat for each)",
    )
    parser.add_argument(
        "--listen", default=f"127.0.0.1:{DEFAULT_PORT}", metavar="IP:PORT", help="UDP and TCP"
    )
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL_S, help="seconds answers may be cached")
    parser.add_argument("--interval", type=float, default=defaults.interval_s, help="seconds between checks")
    parser.add_argument("--timeout", type=float, default=defaults.timeout_s, help="seconds per check")
    parser.add_argument(
        "--unhealthy-after",
        type=int,
        default=defaults.unhealthy_threshold,
        help="failed checks in a row that take a gateway out of the answers",
    )
    parser.add_argument(
        "--healthy-after", type=int, default=defaults.healthy_threshold, help="passed checks to bring it back"
    )
    parser.add_argument("--health-path", default=defaults.path, help="the readiness path checked")
    return parser


def build_config(argv: Sequence[str] | None = None) -> DnsConfig:
    """The config the flags describe; ConfigError (exit 2) naming the flag for any mistake."""
    args = _parser().parse_args(argv)
    gateways = [parse_gateway(text, i) for i, text in enumerate(args.gateway, start=1)]
    host, port = parse_listen(args.listen)
    try:
        health = HealthCheck(
            path=args.health_path,
            interval_s=args.interval,
            timeout_s=args.timeout,
            unhealthy_threshold=args.unhealthy_after,
            healthy_threshold=args.healthy_after,
        )
        return DnsConfig(
            name=args.name, gateways=gateways, host=host, port=port, ttl_s=args.ttl, health=health
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        flag = _FLAGS.get(field, f"--{field.replace('_', '-')}")
        raise ConfigError(str(error["msg"]).removeprefix("Value error, "), field=flag) from None


_FLAGS = {
    "name": "--name",
    "gateways": "--gateway",
    "ttl_s": "--ttl",
    "interval_s": "--interval",
    "timeout_s": "--timeout",
    "unhealthy_threshold": "--unhealthy-after",
    "healthy_threshold": "--healthy-after",
    "path": "--health-path",
}


def responder_command(config: DnsConfig) -> list[str]:
    """The argv that runs ``config`` as a process of its own (for a supervisor such as the fleet)."""
    host = f"[{config.host}]" if ":" in config.host else config.host
    args = [
        sys.executable,
        "-m",
        "stratus.serving.dns",
        "--name",
        config.name,
        "--listen",
        f"{host}:{config.port}",
    ]
    for gateway in config.gateways:
        ip = f"[{gateway.ip}]" if gateway.ip.version == 6 else str(gateway.ip)
        args += ["--gateway", f"{gateway.name}={ip}:{gateway.port}"]
    health = config.health
    args += [
        "--ttl",
        str(config.ttl_s),
        "--interval",
        str(health.interval_s),
        "--timeout",
        str(health.timeout_s),
    ]
    args += [
        "--unhealthy-after",
        str(health.unhealthy_threshold),
        "--healthy-after",
        str(health.healthy_threshold),
    ]
    return [*args, "--health-path", health.path]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the flags and serve until stopped; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = build_config(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        run(config)
    except OSError as exc:
        print(
            f"error: --listen {config.host}:{config.port}: cannot listen there: {exc.strerror or exc} "
            f"(ports below 1024 need root; the default is {DEFAULT_PORT})",
            file=sys.stderr,
        )
        return 2
    return 0
