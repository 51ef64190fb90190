"""What one serving process (model server or gateway) lets a client hold: time, connections and memory.

Without these, a client that opens connections and sends nothing, half a header, or half a body keeps
them (and their buffers) for as long as it likes, and concurrent large bodies grow the process without
bound. :class:`ServingLimits` is the one set of knobs both processes take (the server as CLI flags, the
gateway under ``limits:`` in its config); :mod:`stratus.serving.http_guard` enforces the timeouts and the
connection cap in the HTTP protocol layer, and :class:`ByteBudget` bounds the request-body bytes held
(:func:`stratus.serving.asgi.read_body` holds them).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "RETRY_AFTER_S",
    "BodyReservation",
    "ByteBudget",
    "ServingLimits",
    "add_limit_flags",
    "limit_flags",
    "limits_from_flags",
]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Retry-After of a 503 for a full byte budget or connection cap: bodies in flight finish in about that.
RETRY_AFTER_S = b"1"


class ServingLimits(BaseModel):
    """Per-process limits; the defaults suit a model server or gateway on a small machine."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1)
    """Largest request body; a bigger one is a 413, refused from its Content-Length before it is read."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """The request line and headers must all arrive within this, counted from the request's first byte
    (from the connection's opening for its first request)."""
    body_timeout_s: float = Field(default=60.0, gt=0)
    """The whole body must arrive within this, counted from the end of the headers (a total, not a gap
    between reads, so that a byte every few seconds does not hold a connection)."""
    keep_alive_s: float = Field(default=5.0, gt=0)
    """An idle keep-alive connection (between requests) is closed after this."""
    max_connections: int = Field(default=1024, ge=1)
    """Open connections per process; one more is answered 503 (Retry-After) and closed at once."""
    max_inflight_bytes: int = Field(default=128 * 1024 * 1024, ge=1)
    """Request-body bytes held by all requests in progress; a request that would exceed it is a 503 with
    Retry-After. At least ``max_body_bytes``, or the largest body allowed could never be served."""

    @model_validator(mode="after")
    def _one_body_fits(self) -> ServingLimits:
        if self.max_inflight_bytes < self.max_body_bytes:
            raise ValueError(
                f"max_inflight_bytes ({self.max_inflight_bytes}) must be at least max_body_bytes "
                f"({self.max_body_bytes}): a body of the largest size allowed could never be served"
            )
        return self


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per :class:`ServingLimits` field (``--header-timeout-s``...), defaults included."""
    for name, field in ServingLimits.model_fields.items():
        kind = int if field.annotation is int else float
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=_positive(kind),
            default=field.default,
            help=f"{' '.join((field.description or '').split())} (default {field.default})",
        )


def limit_flags(limits: ServingLimits) -> list[str]:
    """The command-line flags that give a server ``limits`` (the inverse of :func:`limits_from_flags`)."""
    return [arg for name, value in limits for arg in ("--" + name.replace("_", "-"), str(value))]


def limits_from_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ServingLimits:
    """The limits parsed by the flags of :func:`add_limit_flags`; inconsistent ones exit 2 naming them."""
    try:
        return ServingLimits(**{name: getattr(args, name) for name in ServingLimits.model_fields})
    except ValidationError as exc:
        parser.error("; ".join(str(error["ctx"]["error"]) for error in exc.errors()))


class BodyReservation:
    """The bytes one request holds against a :class:`ByteBudget`; release it once the answer is sent."""

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self.size = 0

    @property
    def limit(self) -> int:
        """The budget's limit, for messages."""
        return self._budget.limit

    def grow(self, size: int) -> bool:
        """Hold ``size`` bytes in all (never shrinks); False, keeping what it held, if the budget is full."""
        extra = size - self.size
        if extra <= 0:
            return True
        if not self._budget.take(extra):
            return False
        self.size = size
        return True

    def release(self) -> None:
        """Give every byte back (idempotent)."""
        self._budget.give(self.size)
        self.size = 0


class ByteBudget:
    """A count of request-body bytes in flight in one process (one event loop, so no lock is needed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def reserve(self) -> BodyReservation:
        """An empty reservation for one request."""
        return BodyReservation(self)

    def take(self, size: int) -> bool:
        """Count ``size`` more bytes if they fit; False (and nothing counted) when they do not."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        """Give back bytes counted by :meth:`take`."""
        self.used -= size
