"""The policy engine fails closed: every way a policy can be wrong denies, with the error shown.

Real regorus in its real worker process; each test loads a small module and asks one decision.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratus.config.platform import LIBRARY_DIR
from stratus.policy import Decision, Module, PolicyEngine
from stratus.policy.loader import read_modules
from stratus.storage import allows

pytest.importorskip("regorus", reason="the policy extra (gordon-to-regorus) is not installed")

HEADER = "package stratus.policy\n\nimport rego.v1\n\n"
ASK = {"decision": "plan", "tags": {"team": "t"}, "n": 2}


def _decide(text: str, doc: dict[str, object] | None = None, timeout_s: float = 5.0) -> Decision:
    with PolicyEngine([Module("p.rego", HEADER + text)], timeout_s=timeout_s) as engine:
        return engine.decide([doc or ASK])[0]


def test_allow_exactly_true_with_no_deny_allows() -> None:
    assert _decide("allow if input.n == 2\n") == Decision(True)


def test_a_module_that_does_not_parse_denies_every_decision_with_the_parser_error() -> None:
    decision = _decide("allow if {{ input.n == 2\n")
    assert not decision.allowed
    assert decision.reasons[0].startswith("the policies do not compile: ")
    assert decision.reasons[0].endswith("p.rego:6:1: expecting `}` while parsing set")


def test_an_undefined_decision_denies() -> None:
    decision = _decide("allow if input.n == 3\n")
    assert decision == Decision(
        False, ("data.stratus.policy.allow is undefined (fail closed: no rule allowed it)",)
    )
    # No module defining allow at all is the same.
    assert _decide("other := 1\n").reasons == decision.reasons


@pytest.mark.parametrize(
    ("rule", "shown"), [("allow := false", "false"), ("allow := 1", "1"), ('allow := "true"', '"true"')]
)
def test_anything_but_true_denies(rule: str, shown: str) -> None:
    assert _decide(rule + "\n") == Decision(False, (f"data.stratus.policy.allow is {shown}, not true",))


def test_a_deny_message_denies_even_when_allow_is_true() -> None:
    decision = _decide('allow := true\n\ndeny contains "no, says the policy" if input.n == 2\n')
    assert decision == Decision(False, ("no, says the policy",))


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("allow if { x := 1 / 0; x > 0 }", "divide by zero"),
        ('allow if { x := "a" + 1; x }', "expects numeric argument"),
        ("allow := true\n\nallow := false if input.n == 2", "rule conflicts with rule"),
    ],
    ids=["divide-by-zero", "type-error", "conflict"],
)
def test_an_evaluation_error_denies_with_the_error(body: str, error: str) -> None:
    decision = _decide(body + "\n")
    assert not decision.allowed
    assert decision.reasons[0].startswith("policy evaluation error: ")
    assert error in decision.reasons[0]
    assert "p.rego:" in decision.reasons[0]
    assert "Stack backtrace" not in decision.reasons[0]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0


def test_a_decision_past_its_deadline_denies_and_so_does_every_later_one() -> None:
    looping = (
        "allow if { count([x | some a in numbers.range(1, 4000); some b in numbers.range(1, 4000); "
        "x := a * b]) > 0 }\n"
    )
    with PolicyEngine([Module("slow.rego", HEADER + looping)], timeout_s=0.3) as engine:
        engine.load_error()  # starts the worker
        worker = engine._proc
        assert worker is not None
        first, second = engine.decide([ASK, ASK])
        assert not first.allowed
        assert first.reasons[0].startswith("policy evaluation timed out after 0.3 s")
        assert second == first
        assert engine.decide([ASK]) == [first]  # later calls too, without asking the engine again
        assert not _running(worker.pid)


def test_a_worker_that_dies_mid_decision_denies_it_and_the_next_one_starts_afresh() -> None:
    slow_when_asked = (
        "allow if { input.slow; count([x | some a in numbers.range(1, 4000); "
        "some b in numbers.range(1, 4000); x := a * b]) > 0 }\n\nallow if not input.slow\n"
    )
    with PolicyEngine([Module("p.rego", HEADER + slow_when_asked)], timeout_s=60) as engine:
        engine.load_error()
        worker = engine._proc
        assert worker is not None
        killer = threading.Timer(0.5, os.kill, (worker.pid, signal.SIGKILL))
        killer.start()
        died = engine.decide([{**ASK, "slow": True}])[0]
        killer.join()
        assert not died.allowed
        assert died.reasons[0].startswith("the policy engine stopped (killed by signal 9)")
        assert engine.decide([{**ASK, "slow": False}]) == [Decision(True)]
        assert engine._proc is not None
        assert engine._proc.pid != worker.pid


def test_closing_the_engine_stops_its_worker() -> None:
    engine = PolicyEngine([Module("p.rego", HEADER + "allow := true\n")])
    engine.load_error()
    assert engine._proc is not None
    pid = engine._proc.pid
    engine.close()
    assert not _running(pid)


# -- the library's residency policy is the built-in rule --------------------------------------------


@pytest.fixture(scope="module")
def library() -> Iterator[PolicyEngine]:
    teams = {"stratus": {"teams": {"t": {"providers": ["gcp"], "gpus": ["L4"]}}}}
    with PolicyEngine(read_modules([LIBRARY_DIR], LIBRARY_DIR, tests=False), teams) as engine:
        yield engine


BOUNDS = [frozenset(), frozenset({"EU"}), frozenset({"US"}), frozenset({"EU", "US"})]
PLACES = ["EU", "US", "UK", None]


def _residency_messages(decision: Decision) -> list[str]:
    return [r for r in decision.reasons if r.startswith("residency:")]


def test_the_residency_policy_decides_as_the_built_in_rule_at_every_decision_point(
    library: PolicyEngine,
) -> None:
    cases = list(itertools.product(BOUNDS, PLACES))
    docs = []
    for bound, where in cases:
        site = {"name": "s", "provider": "gcp", "region": "r", "jurisdiction": where}
        docs += [
            {
                "decision": "plan",
                "pipeline": "p",
                "tags": {"team": "t", "project": "p"},
                "step": {"name": "x", "resources": {"accelerators": None}},
                "site": site,
                "offering": {"name": "o"},
                "pricing": "on-demand",
                "price_per_hour_usd": 1.0,
                "residency": sorted(bound),
            },
            {"decision": "run", "action": "copy", "artifact": "a", "residency": sorted(bound), "to": site},
            {"decision": "repair", "artifact": "a", "residency": sorted(bound), "to": site, "from": []},
            {"decision": "serve", "model": {"name": "m", "residency": sorted(bound)}, "site": site},
        ]
    decisions = library.decide(docs)
    for i, (bound, where) in enumerate(cases):
        for decision in decisions[4 * i : 4 * i + 4]:
            assert (not _residency_messages(decision)) == allows(where, bound), (bound, where, decision)
            assert decision.allowed == allows(where, bound), (bound, where, decision)
