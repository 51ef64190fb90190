"""The SkyPilot anchor: the same instance through SkyPilot 0.14.1's optimizer, live, in its own venv.

SkyPilot is never installed into our venv: ``make bench-planner`` installs it into
``.stratus/bench-peers/skypilot-0.14.1`` and names that Python in ``$STRATUS_BENCH_SKY_PYTHON``
(``/tmp/skyvenv`` is tried when the variable is unset). When SkyPilot is there, ``sky_harness.py``
runs there in a subprocess with a scratch ``HOME`` holding our bundled catalog CSVs; otherwise the
anchor is skipped with a note and the quoted figures stand.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from bench.planner.instances import Instance
from bench.planner.runner import run_killable
from stratus.planner import Problem, evaluate

__all__ = ["QUOTED", "SkyResult", "find_sky_python", "run_sky"]

DEFAULT_SKY_PYTHON = Path("/tmp/skyvenv/bin/python")
HARNESS = Path(__file__).with_name("sky_harness.py")
SKY_CLOUDS = {"aws": "AWS", "gcp": "GCP", "azure": "Azure"}  # our provider → str(sky cloud)
# Figures quoted in the issue: SkyPilot 0.14.1's optimizer on the project's reference machine.
QUOTED = {"chain": "20 s (50-step chain, DP)", "dag": "335 s (50-step DAG, 53 spot candidates/step, ILP)"}


@dataclass
class SkyResult:
    """What the live SkyPilot run gave, or why there is none."""

    ok: bool
    note: str = ""
    wall_s: float | None = None  # the subprocess, imports included
    optimize_s: float | None = None  # Optimizer.optimize alone
    enumerate_s: float | None = None
    solve_s: float | None = None
    method: str | None = None
    candidates: int | None = None
    candidates_per_step: list[int] = field(default_factory=list)
    ilp_binaries: int | None = None
    ilp_rows: int | None = None
    stratus_cost_of_sky_plan: Decimal | None = None  # SkyPilot's placement priced by Stratus's model
    patched: list[str] = field(default_factory=list)


def find_sky_python() -> Path | None:
    """The Python of a venv with skypilot, or None."""
    configured = os.environ.get("STRATUS_BENCH_SKY_PYTHON")
    path = Path(configured) if configured else DEFAULT_SKY_PYTHON
    return path if path.is_file() else None


def run_sky(python: Path, instance: Instance, problem: Problem, timeout_s: float) -> SkyResult:
    """Optimise ``instance`` with SkyPilot in a subprocess; price its plan with ``problem``'s model."""
    with tempfile.TemporaryDirectory(prefix="stratus-bench-sky-") as scratch:
        home = Path(scratch) / "home"
        _install_catalogs(home)
        spec_path, out_path = Path(scratch) / "spec.json", Path(scratch) / "out.json"
        spec = {"steps": [asdict(s) for s in instance.specs]}
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": scratch,  # PuLP writes its model there; a killed CBC leaves nothing behind
            "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        begun = time.perf_counter()
        command = [str(python), str(HARNESS), str(spec_path), str(out_path)]
        code, out, err = run_killable(command, timeout_s, env, memory_limit_bytes=_memory_cap())
        wall = time.perf_counter() - begun
        if code is None:
            return SkyResult(ok=False, wall_s=wall, note=_how_far(out, timeout_s))
        if code != 0 or not out_path.is_file():
            tail = (err or out).strip().splitlines()[-2:]
            return SkyResult(ok=False, wall_s=wall, note=f"exit {code}: " + " | ".join(tail))
        raw: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    return SkyResult(
        ok=True,
        wall_s=wall,
        optimize_s=raw["optimize_s"],
        enumerate_s=raw.get("enumerate_s"),
        solve_s=raw.get("solve_s"),
        method=raw.get("method"),
        candidates=raw.get("candidates"),
        candidates_per_step=raw.get("candidates_per_step", []),
        ilp_binaries=raw.get("ilp_binaries"),
        ilp_rows=raw.get("ilp_rows"),
        stratus_cost_of_sky_plan=_price(problem, raw["placement"]),
        patched=raw.get("patched", []),
        note=f"skypilot {raw.get('sky_version')}",
    )


def _how_far(stdout: str, timeout_s: float) -> str:
    """What a killed harness had got through, from its last progress line."""
    reached: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith('{"progress"'):
            reached = json.loads(line)["progress"]
    note = f"did not finish in {timeout_s:.0f} s (killed)"
    if "enumerate_s" in reached:
        enumerated = f"{reached['enumerate_s']:.1f} s, {reached['candidates']:,} candidates"
        note += f"; candidate enumeration done ({enumerated})"
    if reached.get("method") == "ilp":
        note += (
            f"; its ILP ({reached['ilp_binaries']:,} binaries, {reached['ilp_rows']:,} rows) was being "
            "built or solved by PuLP/CBC"
        )
    return note


def _memory_cap() -> int | None:
    """Three quarters of physical memory: SkyPilot's ILP grows with candidates² per edge."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
    return int(pages * size * 0.75)


def _install_catalogs(home: Path) -> None:
    """Our bundled catalog files where SkyPilot 0.14.1 looks for its v8 catalogs.

    SkyPilot also reads ``common/accelerators.csv`` (accelerator name → clouds, to canonicalise names)
    and ``common/metadata.csv`` (GPU memory) and would download them; we derive the first from the same
    VM files and leave the second empty (only ``accelerators: {memory: ...}`` requests read it).
    """
    root = home / ".sky" / "catalogs" / "v8"
    data = resources.files("stratus.catalog").joinpath("data")
    clouds_of: dict[str, set[str]] = {}
    for provider, label in SKY_CLOUDS.items():
        target = root / provider
        target.mkdir(parents=True, exist_ok=True)
        with data.joinpath(f"{provider}_vms.csv").open("rb") as src, (target / "vms.csv").open("wb") as dst:
            shutil.copyfileobj(src, dst)
        with (target / "vms.csv").open(encoding="utf-8", newline="") as rows:
            for row in csv.DictReader(rows):
                if row.get("AcceleratorName"):
                    clouds_of.setdefault(row["AcceleratorName"], set()).add(label)
    common = root / "common"
    common.mkdir(parents=True, exist_ok=True)
    with (common / "accelerators.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["AcceleratorName", "Clouds"])
        for name, labels in sorted(clouds_of.items()):
            writer.writerow([name, ", ".join(sorted(labels))])
    (common / "metadata.csv").write_text("GPU,MemoryGB,Manufacturer\n", encoding="utf-8")


def _price(problem: Problem, placement: list[dict[str, Any]]) -> Decimal | None:
    """SkyPilot's chosen regions as a Stratus assignment, priced by ``evaluate``; None if one is unusable."""
    site_index = {name: i for i, name in enumerate(problem.sites)}
    step_index = {name: i for i, name in enumerate(problem.steps)}
    assignment = [-1] * len(problem.steps)
    for chosen in placement:
        site = site_index.get(f"{chosen['cloud']}-{chosen['region']}")
        i = step_index[chosen["step"]]
        if site is None or site not in problem.candidates[i]:
            return None
        assignment[i] = site
    return evaluate(problem, assignment).total_cost_usd
