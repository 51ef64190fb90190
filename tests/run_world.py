"""A small platform and pipeline on disk for runner tests: three local sites, steps that sleep briefly.

Sites (all EU, local files beside the platform file, so a test's tmp_path holds everything):
  cheap   — the cheapest node, also sold as spot; where the planner puts almost everything
  backup  — dearer; the next-best placement when ``cheap`` fails under a step
  vault   — dearest; used only as a replica target

Steps: ``dataset:numbers`` (made) → square → (total, evens) → combine. Outputs are deterministic, so
rerunning an attempt reproduces the same bytes and hashes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]

STEPS = textwrap.dedent(
    """
    import json
    import time
    from pathlib import Path

    def make_numbers(ctx):
        ctx.output("numbers").write_text("\\n".join(str(i) for i in range(ctx.params["n"])))
        time.sleep(ctx.params.get("sleep", 0))
        return {"n": ctx.params["n"]}

    def square(ctx):
        numbers = [int(x) for x in ctx.input("numbers").read_text().split()]
        ctx.log(f"squaring {len(numbers)} numbers")
        time.sleep(ctx.params.get("sleep", 0))
        ctx.output("squares").write_text("\\n".join(str(n * n) for n in numbers))
        return {"count": len(numbers)}

    def total(ctx):
        time.sleep(ctx.params.get("sleep", 0))
        value = sum(int(x) for x in ctx.input("squares").read_text().split())
        ctx.output("sum").write_text(str(value))
        return {"sum": value}

    def evens(ctx):
        time.sleep(ctx.params.get("sleep", 0))
        folder = ctx.output("evens")
        folder.mkdir()
        values = [x for x in ctx.input("squares").read_text().split() if int(x) % 2 == 0]
        (folder / "evens.txt").write_text("\\n".join(values))
        (folder / "meta").mkdir()
        (folder / "meta" / "count.json").write_text(json.dumps({"count": len(values)}))

    def combine(ctx):
        time.sleep(ctx.params.get("sleep", 0))
        count = json.loads((ctx.input("evens") / "meta" / "count.json").read_text())["count"]
        ctx.output("report").write_text(f"sum={ctx.input('sum').read_text()} evens={count}")
        return {"auc": 0.875, "evens": count}

    def flaky(ctx):
        marker = Path(ctx.params["marker"])
        failures = int(marker.read_text()) if marker.exists() else 0
        if failures < ctx.params["fail_times"]:
            marker.write_text(str(failures + 1))
            raise RuntimeError(f"flaky failure {failures + 1}")
        ctx.output("squares").write_text(ctx.input("numbers").read_text())
    """
)


def platform(vault_storage: str = "file://sites/vault") -> dict[str, Any]:
    """Three local sites; ``vault_storage`` can point somewhere unwritable to break dual-writes."""

    def site(name: str, storage: str, price: float, spot: float | None = None) -> dict[str, Any]:
        offering: dict[str, Any] = {
            "name": f"node-{name}",
            "vcpus": 4,
            "memory_gb": 8,
            "price_per_hour_usd": price,
        }
        if spot is not None:
            offering["spot_price_per_hour_usd"] = spot
        return {
            "provider": "onprem",
            "region": f"dc-{name}",
            "jurisdiction": "EU",
            "storage": storage,
            "compute": {"backend": "local", "capacity": {"max_parallel_steps": 2}},
            "offerings": [offering],
        }

    return {
        "sites": {
            "cheap": site("cheap", "file://sites/cheap", 0.50, spot=0.10),
            "backup": site("backup", "file://sites/backup", 0.80),
            "vault": site("vault", vault_storage, 5.00),
        }
    }


def pipeline(sleep: float = 0.0, **overrides: dict[str, Any]) -> dict[str, Any]:
    """The square → (total, evens) → combine pipeline; ``overrides[step]`` merges into that step."""
    steps: dict[str, dict[str, Any]] = {
        "square": {
            "run": "flow_steps:square",
            "inputs": ["dataset:numbers"],
            "outputs": {"squares": {"size_gb": 0.01}},
            "replicate": ["vault"],
        },
        "total": {"run": "flow_steps:total", "inputs": ["square.squares"], "outputs": {"sum": {}}},
        "evens": {"run": "flow_steps:evens", "inputs": ["square.squares"], "outputs": {"evens": {}}},
        "combine": {
            "run": "flow_steps:combine",
            "inputs": ["total.sum", "evens.evens"],
            "outputs": {"report": {}},
        },
    }
    for name, step in steps.items():
        step.setdefault("estimated_hours", 0.1)
        step["params"] = {"sleep": sleep}
        step.update(overrides.get(name, {}))
    return {
        "name": "flow",
        "tags": {"team": "tests"},
        "datasets": {
            "numbers": {
                "site": "cheap",
                "size_gb": 0.01,
                "residency": "EU",
                "make": "flow_steps:make_numbers",
                "params": {"n": 50, "sleep": sleep},
            }
        },
        "steps": steps,
    }


def write_world(
    folder: Path, *, pipeline_spec: dict[str, Any] | None = None, platform_spec: dict[str, Any] | None = None
) -> Path:
    """Write stratus.yaml, pipeline.yaml and flow_steps.py into ``folder``; return the pipeline file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stratus.yaml").write_text(
        yaml.safe_dump(platform_spec or platform(), sort_keys=False), encoding="utf-8"
    )
    (folder / "flow_steps.py").write_text(STEPS, encoding="utf-8")
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline_spec or pipeline(), sort_keys=False), encoding="utf-8")
    return path


def stratus_cli(
    *args: str | Path,
    cwd: Path,
    timeout: float = 120,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m stratus ARGS`` as a user runs it; wide, colourless output.

    ``preexec_fn`` runs in the child before it starts (e.g. to cap its memory with setrlimit).
    """
    return run_python("-m", "stratus", *args, cwd=cwd, timeout=timeout, preexec_fn=preexec_fn)


def run_python(
    *args: str | Path,
    cwd: Path,
    timeout: float = 120,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in the CLI's environment (:func:`cli_env`), output captured, never raising."""
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=preexec_fn,
    )


def cli_env() -> dict[str, str]:
    """The environment for CLI subprocesses: no colour, wide lines, no state URL leaking in."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("STRATUS_STATE_URL", None)
    return env


def one_json(stdout: str) -> dict[str, Any]:
    """The single JSON object a --json command printed (and nothing else)."""
    decoder = json.JSONDecoder()
    payload, end = decoder.raw_decode(stdout.lstrip())
    assert stdout.lstrip()[end:].strip() == "", f"more than one JSON value on stdout:\n{stdout}"
    assert isinstance(payload, dict)
    return payload


def storage_json(world: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """``stratus storage ARGS --json`` beside ``world``'s platform file: exit code and the JSON object."""
    result = stratus_cli("storage", *args, "--json", cwd=world.parent)
    return result.returncode, one_json(result.stdout)


def object_path(world: Path, site: str, sha: str) -> Path:
    """Where a local site of the world keeps an object (to corrupt or delete it as a disk would)."""
    return world.parent / "sites" / site / "objects" / "sha256" / sha[:2] / sha
