"""Evaluate Rego policies, fail closed: anything but an explicit ``allow == true`` with no ``deny`` denies.

The engine is regorus (``gordon-to-regorus``, pinned in the ``policy`` extra): it reports every error it
meets (parse errors, ``1 / 0``, a type error, conflicting complete rules) as an exception with the file,
line and column, and tells ``false`` from undefined. It holds the GIL for a whole evaluation and cannot be
interrupted from Python, so it runs in a worker process (``worker.py``) that is killed when a decision
overruns its deadline. ``docs/policy.md`` has the measurements behind that choice.

Fail-closed rules, each a denial whose reason is shown wherever the decision is reported:

* a module that does not parse: every decision denies with the parser's message;
* an evaluation error (``1 / 0``, a type error, a conflict between complete rules): that decision denies;
* ``allow`` undefined, or anything but exactly ``true``: denies; so does any message in ``deny``;
* a decision past its deadline: denies, the worker is killed, and every later decision of this engine
  denies too (a policy that loops once will loop again; waiting a deadline per decision would stall
  every planner and runner that asks);
* the worker dying (a crash of the engine): that decision denies; the next one starts a fresh worker.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DECISION_PACKAGE", "Decision", "Module", "PolicyEngine", "RuleResult", "encode"]

#: Every decision point asks the same package; ``input.decision`` says which point is asking.
DECISION_PACKAGE = "data.stratus.policy"
_WORKER = Path(__file__).with_name("worker.py")
#: Starting the worker and parsing every module, before the first decision: generous, it happens once.
_LOAD_TIMEOUT_S = 30.0
_STDERR_TAIL = 2000


@dataclass(frozen=True)
class Module:
    """One Rego module: the name errors cite (its file) and its text."""

    name: str
    text: str


@dataclass(frozen=True)
class Decision:
    """Allowed, or denied with the policy's own messages (or the reason the engine failed closed)."""

    allowed: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleResult:
    """One rule's value: ``defined`` False when undefined; ``error`` when evaluating it failed."""

    defined: bool
    value: Any = None
    error: str | None = None


class _TimeoutError(Exception):
    pass


class _DiedError(Exception):
    pass


class PolicyEngine:
    """Rego modules and a data document, evaluated in a worker process; safe to share between threads."""

    def __init__(
        self,
        modules: Sequence[Module],
        data: Mapping[str, Any] | None = None,
        *,
        timeout_s: float = 1.0,
        package: str = DECISION_PACKAGE,
    ) -> None:
        self.modules = tuple(modules)
        self.data = dict(data or {})
        self.timeout_s = timeout_s
        self.package = package
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._broken: str | None = None  # modules that do not parse: every decision denies with this
        self._stalled: str | None = None  # a decision timed out: every later one denies with this
        self._finalizer: weakref.finalize[Any, PolicyEngine] | None = None

    # -- public -------------------------------------------------------------------------------------

    def decide(self, inputs: Sequence[Mapping[str, Any]]) -> list[Decision]:
        """One decision per input document, in order, each under its own deadline."""
        return self.decide_json([encode(doc) for doc in inputs])

    def decide_json(self, lines: Sequence[str]) -> list[Decision]:
        """:meth:`decide` for documents already encoded by :func:`encode` (one line of JSON each)."""
        if not lines:
            return []
        with self._lock:
            failed = self._unusable()
            if failed is not None:
                return [Decision(False, (failed,))] * len(lines)
            header = json.dumps({"op": "decide", "package": self.package, "count": len(lines)})
            results: list[Decision] = []
            try:
                self._write(header + "\n" + "\n".join(lines) + "\n")
                for _ in lines:
                    results.append(self._decision(self._read(self.timeout_s)))
            except _TimeoutError:
                self._stalled = (
                    f"policy evaluation timed out after {self.timeout_s:g} s (policies.timeout_s); the "
                    "engine was stopped and denies every later decision: fix the policy that loops"
                )
                self._stop()
            except _DiedError as exc:
                died = str(exc)
                results.append(Decision(False, (died,)))
            failure = self._stalled or "not evaluated: the policy engine stopped on an earlier input"
            results.extend(Decision(False, (failure,)) for _ in range(len(lines) - len(results)))
            return results

    def rule(self, path: str, doc: Mapping[str, Any] | None = None) -> RuleResult:
        """The value of one rule (``data.pkg.name``) for input ``doc``, under the decision deadline."""
        with self._lock:
            failed = self._unusable()
            if failed is not None:
                return RuleResult(False, error=failed)
            try:
                self._write(json.dumps({"op": "rule", "path": path, "input": doc}, default=str) + "\n")
                answer = self._read(self.timeout_s)
            except _TimeoutError:
                self._stop()
                return RuleResult(False, error=f"timed out after {self.timeout_s:g} s")
            except _DiedError as exc:
                return RuleResult(False, error=str(exc))
        if "error" in answer:
            return RuleResult(False, error=str(answer["error"]))
        return RuleResult("value" in answer, answer.get("value"))

    def tests(self) -> list[tuple[str, str]]:
        """(module name, rule path) of every rule named ``test_*``; raises RuntimeError when unusable."""
        with self._lock:
            failed = self._unusable()
            if failed is not None:
                raise RuntimeError(failed)
            self._write('{"op": "tests"}\n')
            answer = self._read(_LOAD_TIMEOUT_S)
        return [(str(name), str(path)) for name, path in answer["tests"]]

    def load_error(self) -> str | None:
        """Why every decision denies (modules that do not parse), starting the worker to find out."""
        with self._lock:
            return self._unusable()

    def close(self) -> None:
        """Stop the worker (a later decision starts a new one)."""
        with self._lock:
            self._stop()

    def __enter__(self) -> PolicyEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- the worker ---------------------------------------------------------------------------------

    def _unusable(self) -> str | None:
        """Start the worker when needed; the reason every decision must deny, if there is one."""
        if self._broken or self._stalled:
            return self._broken or self._stalled
        if self._proc is not None and self._proc.poll() is None:
            return None
        try:
            self._start()
        except (_TimeoutError, _DiedError, OSError) as exc:
            self._stop()
            self._broken = f"the policy engine could not start: {exc}"
        return self._broken

    def _start(self) -> None:
        env = {**os.environ, "RUST_BACKTRACE": "0", "RUST_LIB_BACKTRACE": "0", "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(
            [sys.executable, str(_WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            bufsize=0,
        )
        self._buffer = b""
        self._finalizer = weakref.finalize(self, _kill, self._proc)
        load = {
            "op": "load",
            "modules": [[m.name, m.text] for m in self.modules],
            "data": self.data,
            "timeout_s": self.timeout_s,
        }
        self._write(json.dumps(load, default=str) + "\n")
        answer = self._read(_LOAD_TIMEOUT_S)
        if not answer.get("ok"):
            self._broken = f"the policies do not compile: {answer.get('error')}"
            self._stop()

    def _write(self, text: str) -> None:
        assert self._proc is not None
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(text.encode())
        except (BrokenPipeError, OSError) as exc:
            raise _DiedError(self._death(f"could not be written to ({exc})")) from None

    def _read(self, timeout_s: float) -> dict[str, Any]:
        """The next answer line, or _TimeoutError / _DiedError."""
        assert self._proc is not None
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _TimeoutError(f"no answer within {timeout_s:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise _DiedError(self._death("stopped"))
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        answer = json.loads(line)
        assert isinstance(answer, dict)
        return answer

    def _death(self, what: str) -> str:
        """Why the worker went away, with the end of what it said; it is restarted on the next call."""
        proc = self._proc
        assert proc is not None
        proc.kill()
        code = proc.wait()
        said = proc.stderr.read().decode(errors="replace")[-_STDERR_TAIL:].strip() if proc.stderr else ""
        self._proc = None
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return f"the policy engine {what} ({how}){': ' + said if said else ''}"

    def _stop(self) -> None:
        if self._proc is not None:
            _kill(self._proc)
            self._proc = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

    # -- fail closed --------------------------------------------------------------------------------

    def _decision(self, answer: Mapping[str, Any]) -> Decision:
        """Turn the worker's answer into a decision: only ``allow`` exactly true with no deny allows."""
        if "error" in answer:
            return Decision(False, (f"policy evaluation error: {answer['error']}",))
        deny = answer.get("deny", [])
        if not isinstance(deny, list):
            shown = json.dumps(deny)
            return Decision(False, (f"{self.package}.deny must be a set of messages, not {shown}",))
        reasons = tuple(m if isinstance(m, str) else json.dumps(m, sort_keys=True) for m in deny)
        if reasons:
            return Decision(False, reasons)
        if "allow" not in answer:
            return Decision(False, (f"{self.package}.allow is undefined (fail closed: no rule allowed it)",))
        allow = answer["allow"]
        if allow is not True:
            return Decision(False, (f"{self.package}.allow is {json.dumps(allow)}, not true",))
        return Decision(True)


def encode(doc: Mapping[str, Any]) -> str:
    """An input document as one line of JSON for the worker (keys sorted: equal documents, same text)."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, default=str)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Stop a worker we started (by its Popen, never by name) and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
