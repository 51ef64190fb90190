"""Statistics through the gateway: ask every routable site at once and answer with the sum.

Why not proxy to one site like the other routes: each server counts only what it served, so one site's
answer would be a fraction of the deployment's traffic that changes with whichever site was asked. The
answer names the sites it sums in ``x-stratus-site`` (comma-separated, sorted). A site that fails to answer is
left out of the sum (its name is then missing from that header); none answering is a 502, and a site's
own 4xx (an unknown version, say) passes through when no site answered 200.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson

from stratus.serving.gateway.upstream import ConnectionPool, UpstreamError, UpstreamResponse
from stratus.serving.stats import merge_stats

__all__ = ["Answer", "summed_stats"]

# status, body, headers
Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]
_JSON = (b"content-type", b"application/json")
_SITE_HEADER = b"x-stratus-site"


async def summed_stats(
    sites: Sequence[tuple[str, ConnectionPool]],
    target: bytes,
    headers: bytes,
    timeout_s: float,
    models: Sequence[str],
) -> Answer:
    """GET ``target`` from every site in ``sites`` concurrently; the merged statistics of ``models``."""
    answers = await asyncio.gather(
        *(pool.request(b"GET", target, headers, b"", timeout_s) for _, pool in sites), return_exceptions=True
    )
    docs = []
    summed: list[str] = []
    errors: list[str] = []
    refusal: UpstreamResponse | None = None
    for (name, _), answer in zip(sites, answers, strict=True):
        if isinstance(answer, UpstreamError):
            errors.append(f"{name}: {answer}")
        elif isinstance(answer, BaseException):
            raise answer
        elif answer.status != 200:
            errors.append(f"{name}: HTTP {answer.status}")
            if answer.status < 500 and refusal is None:
                refusal = answer
        else:
            try:
                docs.append(orjson.loads(answer.body))
            except orjson.JSONDecodeError:
                errors.append(f"{name}: statistics that are not JSON")
                continue
            summed.append(name)
    if not docs:
        if refusal is not None:
            return refusal.status, refusal.body, [_JSON]
        message = f"no site answered for statistics: {'; '.join(errors)}"
        return 502, orjson.dumps({"error": message}), [_JSON]
    try:
        merged = merge_stats(docs, models)
    except ValueError as exc:
        return (
            502,
            orjson.dumps({"error": f"a site answered statistics the gateway cannot sum: {exc}"}),
            [_JSON],
        )
    return 200, orjson.dumps(merged), [_JSON, (_SITE_HEADER, ",".join(sorted(summed)).encode())]
