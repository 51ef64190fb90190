"""µs per decision for each Rego engine measured, in-process, on the shipped library.

The decision is what :mod:`stratus.policy.engine` asks: ``deny`` then (when it is empty) ``allow`` of
``data.stratus.policy``. An allowed document is the dearer case (both rules evaluated).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from stratus.policy import Module

__all__ = ["ALLOWED", "DENIED", "TEAMS", "EngineTiming", "time_regopy", "time_regorus"]

TEAMS = {
    "stratus": {
        "teams": {"risk-ml": {"providers": ["gcp", "onprem"], "gpus": ["L4"], "max_usd_per_hour": 2.0}}
    }
}
ALLOWED: dict[str, Any] = {
    "decision": "plan",
    "pipeline": "fraud-detection",
    "tags": {"team": "risk-ml", "project": "fraud"},
    "step": {
        "name": "train",
        "kind": "single",
        "resources": {"cpus": 4, "memory_gb": 16, "accelerators": {"name": "L4", "count": 1}},
        "spot": True,
    },
    "site": {"name": "gcp-eu-west", "provider": "gcp", "region": "europe-west4", "jurisdiction": "EU"},
    "offering": {
        "name": "g2-standard-4",
        "vcpus": 4,
        "memory_gb": 16,
        "accelerator": {"name": "L4", "count": 1},
    },
    "pricing": "on-demand",
    "price_per_hour_usd": 0.85,
    "residency": ["EU"],
}
DENIED = {
    **ALLOWED,
    "site": {"name": "aws-us-east", "provider": "aws", "region": "us-east-1", "jurisdiction": "US"},
}


@dataclass(frozen=True)
class EngineTiming:
    """One engine's cost per decision, or why it could not be measured."""

    engine: str
    allowed_us: float | None
    denied_us: float | None
    note: str


def _per_call(body: Callable[[], object], repeat: int) -> float:
    body()  # warm: the first evaluation prepares the modules
    start = time.perf_counter()
    for _ in range(repeat):
        body()
    return (time.perf_counter() - start) / repeat * 1e6


def time_regorus(modules: list[Module], repeat: int) -> EngineTiming:
    """gordon-to-regorus: set_input_json, eval_rule(deny), eval_rule(allow) as the worker does."""
    import regorus

    engine = regorus.Engine()
    for m in modules:
        engine.add_policy(m.name, m.text)
    engine.add_data(TEAMS)

    def decide(doc: str) -> Callable[[], object]:
        def once() -> object:
            engine.set_input_json(doc)
            deny = engine.eval_rule("data.stratus.policy.deny")
            return deny if deny else engine.eval_rule("data.stratus.policy.allow")

        return once

    allowed = decide(json.dumps(ALLOWED))
    assert allowed() is True, "the library must allow ALLOWED"
    return EngineTiming(
        "regorus (gordon-to-regorus 0.13.0)",
        _per_call(allowed, repeat),
        _per_call(decide(json.dumps(DENIED)), repeat),
        "raises on errors with file:line:col; false and undefined are distinct",
    )


def time_regopy(modules: list[Module], repeat: int) -> EngineTiming:
    """regopy: set_input, query(deny), query(allow); 'undefined' for false, errors as undefined."""
    try:
        import regopy
    except ImportError:
        return EngineTiming("regopy", None, None, "not installed (pip install regopy==1.5.2)")
    interpreter = regopy.Interpreter()
    try:
        for m in modules:
            interpreter.add_module(m.name, m.text)
        interpreter.add_data(TEAMS)
    except Exception as exc:  # it refuses what it cannot parse
        return EngineTiming("regopy", None, None, f"could not load the library: {exc}")

    def decide(doc: dict[str, Any]) -> Callable[[], object]:
        def once() -> object:
            interpreter.set_input(doc)
            deny = str(interpreter.query("data.stratus.policy.deny"))
            return deny if '[""' in deny else str(interpreter.query("data.stratus.policy.allow"))

        return once

    answer = decide(ALLOWED)()
    notes = ["returns 'undefined' for false, and for 1/0 or a type error; can abort the process on errors"]
    notes.append(f"answered {answer!r} for the allowed document")
    timings: list[float | None] = []
    for doc in (ALLOWED, DENIED):
        try:
            timings.append(_per_call(decide(doc), max(3, repeat // 20)))
        except Exception as exc:  # its own output is not always JSON it can read back
            timings.append(None)
            notes.append(f"failed on the {'allowed' if doc is ALLOWED else 'denied'} document: {exc!r}")
    return EngineTiming(f"regopy {version('regopy')}", timings[0], timings[1], "; ".join(notes))
