"""Rego unit tests, as ``opa test`` runs them: every rule named ``test_*`` must evaluate to exactly true.

A test that is false or undefined fails; one whose evaluation errors (or times out) is an error. Modules
that do not parse fail every test with the parser's message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from stratus.policy.engine import Module, PolicyEngine

__all__ = ["TestResult", "run_tests"]

Outcome = Literal["pass", "fail", "error"]


@dataclass(frozen=True)
class TestResult:
    """One test rule's outcome; ``detail`` says what it evaluated to, or the error."""

    __test__ = False  # not a pytest class

    file: str
    name: str
    outcome: Outcome
    detail: str | None
    duration_s: float

    def to_json(self) -> dict[str, Any]:
        """One entry of ``stratus policy test --json``."""
        return {
            "file": self.file,
            "name": self.name,
            "result": self.outcome,
            "detail": self.detail,
            "duration_ms": round(self.duration_s * 1000, 3),
        }


def run_tests(
    modules: Sequence[Module], data: Mapping[str, Any] | None = None, *, timeout_s: float = 5.0
) -> tuple[list[TestResult], str | None]:
    """Every test's result, and why none could run (modules that do not parse), in file order."""
    with PolicyEngine(modules, data, timeout_s=timeout_s) as engine:
        broken = engine.load_error()
        if broken is not None:
            return [], broken
        results = []
        for file, path in engine.tests():
            start = time.perf_counter()
            result = engine.rule(path)
            took = time.perf_counter() - start
            if result.error is not None:
                results.append(TestResult(file, path, "error", result.error, took))
            elif result.defined and result.value is True:
                results.append(TestResult(file, path, "pass", None, took))
            else:
                shown = repr(result.value) if result.defined else "undefined"
                results.append(TestResult(file, path, "fail", f"evaluated to {shown}", took))
        return results, None
