"""``python -m stratus.serving.gateway --config FILE [--host H] [--port P]``: run the global gateway."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from stratus.errors import ConfigError
from stratus.serving.gateway.config import load_gateway_config
from stratus.serving.gateway.runner import serve

__all__ = ["main"]


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {port}")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    """Load the config, serve until stopped; returns the exit code (2 for a bad config)."""
    parser = argparse.ArgumentParser(
        prog="python -m stratus.serving.gateway",
        description="One Open Inference Protocol (V2 REST) endpoint routing to healthy model-server sites.",
    )
    parser.add_argument("--config", type=Path, required=True, help="gateway config, JSON or YAML")
    parser.add_argument("--host", default=None, help="listen address (overrides the config)")
    parser.add_argument("--port", type=_port, default=None, help="listen port (overrides the config)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_gateway_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    overrides = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
    return 0 if serve(config.model_copy(update=overrides)) else 1


if __name__ == "__main__":
    sys.exit(main())
