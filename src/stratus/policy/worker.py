"""The policy engine's worker process: regorus, behind a pipe, so a runaway policy can be killed.

regorus holds the GIL for a whole evaluation and has no deadline of its own in its Python binding, so a
policy that loops cannot be interrupted from a thread of the process that runs it. It therefore runs
here, in a process of its own that the parent kills when a decision is late (``engine.py``). Each
evaluation is also bounded from the inside: ``SIGALRM`` keeps its default action (terminate), and an
interval timer is armed around every evaluation, so an orphaned worker (its parent SIGKILLed mid-decision)
still dies instead of spinning on.

Protocol, one JSON document per line on stdin, answers on stdout:

* ``{"op": "load", "modules": [[name, text], ...], "data": {...}, "timeout_s": T}`` → ``{"ok": true}`` or
  ``{"ok": false, "error": "..."}`` (a module that does not parse).
* ``{"op": "decide", "package": "data.stratus.policy", "count": N}`` followed by N lines, each one input
  document → N lines ``{"allow": V, "deny": [...]}`` (``allow`` absent when undefined, or not evaluated
  once ``deny`` has a message) or ``{"error": "..."}``.
* ``{"op": "rule", "path": "data.p.test_x", "input": {...} | null}`` → ``{"value": V}``, ``{}`` (undefined)
  or ``{"error": "..."}``.
* ``{"op": "tests"}`` → ``{"tests": [[file, "data.p.test_x"], ...]}``: every rule named ``test_*``.

Only the standard library and regorus are imported: this process starts for every command that decides.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

__all__ = ["main"]

_NO_RULE = "not a valid rule path"


def _error(exc: BaseException) -> str:
    """regorus's message on one line, ``FILE:LINE:COL: what``, without the Rust backtrace it appends.

    It prints a source excerpt (``--> p.rego:6:1``, the line, a caret, ``error: ...``): rejection tables and
    run errors show one line per reason.
    """
    text = str(exc).split("\nStack backtrace:", 1)[0].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith("--> "):
        what = next((line.removeprefix("error: ") for line in lines if line.startswith("error: ")), lines[-1])
        return f"{lines[0].removeprefix('--> ')}: {what}"
    return " ".join(lines) or type(exc).__name__


def _plain(value: Any) -> Any:
    """Rego sets come back as Python sets; JSON has lists (sorted, so output is stable)."""
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class _Worker:
    def __init__(self) -> None:
        import regorus

        self.regorus = regorus
        self.engine: Any = None
        self.timeout_s = 1.0

    def _armed(self) -> None:
        # Twice the parent's deadline: the parent normally kills first and reports the timeout.
        signal.setitimer(signal.ITIMER_REAL, self.timeout_s * 2 + 1.0)

    def _disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)

    def load(self, request: dict[str, Any]) -> dict[str, Any]:
        self.timeout_s = float(request.get("timeout_s", 1.0))
        engine = self.regorus.Engine()
        try:
            for name, text in request["modules"]:
                engine.add_policy(name, text)
            engine.add_data(request.get("data") or {})
        except Exception as exc:
            return {"ok": False, "error": _error(exc)}
        self.engine = engine
        return {"ok": True}

    def _rule(self, path: str) -> tuple[bool, Any]:
        """(defined, value); a path no module defines is undefined, as in OPA."""
        try:
            value = self.engine.eval_rule(path)
        except Exception as exc:
            if _error(exc) == _NO_RULE:
                return False, None
            raise
        return value is not None, value

    def decide(self, package: str, line: str) -> dict[str, Any]:
        self._armed()
        try:
            self.engine.set_input_json(line)
            has_deny, deny = self._rule(f"{package}.deny")
            answer: dict[str, Any] = {"deny": _plain(deny) if has_deny else []}
            if answer["deny"]:  # denied whatever allow says: spare its evaluation
                return answer
            has_allow, allow = self._rule(f"{package}.allow")
        except Exception as exc:
            return {"error": _error(exc)}
        finally:
            self._disarm()
        if has_allow:
            answer["allow"] = _plain(allow)
        return answer

    def rule(self, path: str, doc: Any) -> dict[str, Any]:
        self._armed()
        try:
            if doc is not None:
                self.engine.set_input(doc)
            else:
                self.engine.set_input({})
            defined, value = self._rule(path)
        except Exception as exc:
            return {"error": _error(exc)}
        finally:
            self._disarm()
        return {"value": _plain(value)} if defined else {}

    def tests(self) -> dict[str, Any]:
        found: list[list[str]] = []
        for module in json.loads(self.engine.get_ast_as_json()):
            ast = module["ast"]
            package = _ref_path(ast["package"]["refr"])
            for rule in ast.get("rules", []):
                name = _rule_name(rule)
                if name is not None and name.startswith("test_"):
                    found.append([module["source"]["file"], f"{package}.{name}"])
        return {"tests": found}


def _ref_path(ref: dict[str, Any]) -> str:
    """``{"RefDot": {"refr": {"Var": ...}, "field": [span, "b"]}}`` → ``data.a.b``."""
    if "Var" in ref:
        return f"data.{ref['Var']['value']}"
    if "RefDot" in ref:
        return f"{_ref_path(ref['RefDot']['refr'])}.{ref['RefDot']['field'][1]}"
    raise ValueError(f"unexpected package reference {ref}")


def _rule_name(rule: dict[str, Any]) -> str | None:
    """A complete rule's name (``test_x if {...}``); None for functions and dotted or indexed heads."""
    spec = rule.get("Spec")
    if spec is None:
        return None
    head = spec["head"]
    compr = head.get("Compr")
    if compr is None or "Var" not in compr["refr"]:
        return None
    name = compr["refr"]["Var"]["value"]
    return name if isinstance(name, str) else None


def main() -> None:
    """Serve requests until stdin closes (the parent went away)."""
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # a runaway evaluation ends the process
    worker = _Worker()
    out = sys.stdout
    stdin = sys.stdin
    while True:
        line = stdin.readline()
        if not line:
            return
        request = json.loads(line)
        op = request.get("op")
        if op == "decide":  # one answer per input, each as soon as it is known (the parent times each)
            package = request["package"]
            for _ in range(int(request["count"])):
                _send(out, worker.decide(package, stdin.readline()))
        elif op == "load":
            _send(out, worker.load(request))
        elif op == "rule":
            _send(out, worker.rule(request["path"], request.get("input")))
        elif op == "tests":
            _send(out, worker.tests())
        else:
            _send(out, {"error": f"unknown op {op!r}"})


def _send(out: Any, answer: dict[str, Any]) -> None:
    out.write(json.dumps(answer, default=str) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
