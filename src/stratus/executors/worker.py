"""The child side of an executor: ``python -m stratus.executors.worker REQUEST.json``.

Imports the step's ``module:function`` with the pipeline's folder on ``sys.path``, calls it with a
:class:`~stratus.StepContext`, checks every output was written, and writes ``result.json`` (metrics or
the error) atomically. Anything the step prints goes to the log the runner tails.

Exit codes: 0 success, 1 the step raised or missed an output, 2 the request or entry point is broken,
3 the memory limit was hit. ``result.json`` says which kind of failure it was: ``error`` (the step's
own code) or ``unreachable`` (the step's code raised a connection, timeout or 5xx error; see
:mod:`stratus.failures`); a worker that dies without writing it has crashed.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil

from stratus.failures import classify_exception
from stratus.step import ENV_RANK, StepContext
from stratus.units import format_gb

__all__ = ["main"]

_PARENT_POLL_S = 0.5


def main(argv: list[str] | None = None) -> int:
    """Run one step described by the request file named in ``argv``; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m stratus.executors.worker REQUEST.json", file=sys.stderr)
        return 2
    request = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    result_path = Path(request["result_path"])
    _die_with_parent()
    for folder in reversed(request.get("python_path", [])):
        sys.path.insert(0, folder)
    try:
        function = _load(request["entrypoint"])
    except Exception as exc:  # an import can fail in any way its module likes
        traceback.print_exc()
        message = f"cannot import {request['entrypoint']}: {type(exc).__name__}: {exc}"
        _report(result_path, ok=False, failure="error", error=message)
        return 2
    outputs = {name: Path(p) for name, p in request["outputs"].items()}
    context = StepContext(
        step=request["step"],
        run_id=request["run_id"],
        inputs={ref: Path(p) for ref, p in request["inputs"].items()},
        outputs=outputs,
        workdir=Path(request["workdir"]),
        params=request.get("params", {}),
        participants={
            site: {ref: Path(path) for ref, path in refs.items()}
            for site, refs in request.get("participants", {}).items()
        },
    )
    os.chdir(context.workdir)
    limit = request.get("memory_limit_bytes")
    started = time.monotonic()
    try:
        _limit_memory(limit)
        returned = function(context)
    except MemoryError:
        _limit_memory(None)
        limit_text = format_gb(limit or 0)
        _report(result_path, ok=False, failure="memory", error=f"exceeded its memory limit of {limit_text}")
        return 3
    except (Exception, SystemExit) as exc:  # sys.exit() in step code is its failure, not the worker's
        _limit_memory(None)
        traceback.print_exc()
        failure = "unreachable" if classify_exception(exc) == "infrastructure" else "error"
        _report(result_path, ok=False, failure=failure, error=_raised_words(exc))
        return 1
    _limit_memory(None)
    # Of a distributed step's ranks only rank 0 publishes; the others need not write the outputs.
    publishes = os.environ.get(ENV_RANK, "0") == "0"
    problem = (_check_outputs(outputs) if publishes else None) or _check_metrics(returned)
    if problem:
        print(problem, file=sys.stderr)
        _report(result_path, ok=False, failure="error", error=problem)
        return 1
    print(f"[{context.step}] done in {time.monotonic() - started:.2f} s", file=sys.stderr)
    _report(result_path, ok=True, metrics=_plain(returned or {}))
    return 0


def _raised_words(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r}); return from the step function instead"
    return f"raised {type(exc).__name__}: {exc}"


def _load(entrypoint: str) -> Callable[[StepContext], Any]:
    module_name, _, attr = entrypoint.partition(":")
    module = importlib.import_module(module_name)
    function = getattr(module, attr, None)
    if not callable(function):
        raise AttributeError(f"module {module_name!r} ({module.__file__}) has no function {attr!r}")
    return function  # type: ignore[no-any-return]


def _limit_memory(limit: int | None) -> None:
    """Cap the address space at what is mapped now plus ``limit`` (None lifts the cap).

    The interpreter, numpy's thread pools and Stratus itself are already mapped before the step starts;
    they are the function service's runtime, not the step's memory, so the budget counts from here.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if limit is None:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        return
    soft = psutil.Process().memory_info().vms + int(limit)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _check_outputs(outputs: Mapping[str, Path]) -> str | None:
    missing = []
    for name, path in outputs.items():
        if path.exists():
            continue
        near = sorted(p.name for p in path.parent.glob(f"{path.name}.*")) if path.parent.exists() else []
        hint = f" (found {', '.join(near)}: write exactly ctx.outputs[{name!r}])" if near else ""
        missing.append(f"{name} → {path}{hint}")
    if missing:
        return "the step did not write its outputs: " + "; ".join(missing)
    return None


def _check_metrics(returned: object) -> str | None:
    if returned is None:
        return None
    if not isinstance(returned, Mapping):
        return f"the step returned {type(returned).__name__}; return a dict of metrics or None"
    try:
        json.dumps(_plain(returned))
    except (TypeError, ValueError) as exc:
        return f"the step's metrics are not JSON-serialisable: {exc}"
    return None


def _plain(value: Any) -> Any:
    """numpy scalars and arrays become Python numbers and lists; everything else is left for json."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    return value


def _peak_memory_bytes() -> int:
    """The step's own high-water RSS (and its children's).

    Linux's VmHWM belongs to this process image only; ``ru_maxrss`` would also count the runner's memory
    copied at fork, before exec replaced it, and so overstate every small step by the runner's size.
    """
    own = 0
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                own = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return max(own, children)


def _report(path: Path, **fields: Any) -> None:
    fields["peak_memory_bytes"] = _peak_memory_bytes()
    fields.setdefault("metrics", {})
    fields.setdefault("failure", None)
    fields.setdefault("error", None)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(fields), encoding="utf-8")
    os.replace(tmp, path)


def _die_with_parent() -> None:
    """A step outlives nothing: if the runner is killed (even -9), the step's process group goes too.

    Otherwise a resumed run would race an orphan still writing into the old attempt's folder.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(_PARENT_POLL_S)
            if os.getppid() != parent:
                os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
