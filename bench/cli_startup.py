"""How long ``stratus --help`` and ``stratus runs ls`` take to start, before and after a change.

    .venv/bin/python -m bench.cli_startup --before 655bf42 --runs 15

Each command runs ``--runs`` times in a fresh interpreter; the table gives the fastest and the median
wall-clock time and CPU time (user + system, from ``wait4``), and which heavy libraries the command
imported (``python -X importtime``). The fastest run is the one least disturbed by other work on a
shared machine; CPU time is what the command itself cost. ``--before REF`` measures the source tree of
a git commit too (extracted with ``git archive``), against the same state database: one real run of the
test world (tests/run_world.py) made first. Replaces the "CLI start-up" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.results import REPO, RESULTS, machine, replace_section, revision
from tests.run_world import cli_env, write_world

HEAVY = ("sqlalchemy", "pydantic", "scipy", "numpy", "pandas", "pyarrow", "onnxruntime", "mlflow", "torch",
         "fsspec", "boto3", "botocore", "s3fs", "gcsfs", "adlfs", "psutil")  # fmt: skip


def measure(src: Path, args: list[str], cwd: Path, runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``runs`` fresh ``python -m stratus ARGS`` processes."""
    env = {**cli_env(), "PYTHONPATH": str(src)}
    walls, cpus = [], []
    for _ in range(runs):
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "stratus", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(process.pid, 0)
        walls.append(time.perf_counter() - start)
        cpus.append(usage.ru_utime + usage.ru_stime)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"python -m stratus {' '.join(args)} failed with {src}")
    return walls, cpus


def heavy_imports(src: Path, args: list[str], cwd: Path) -> list[str]:
    """The heavy libraries (of HEAVY) the command imported, from ``-X importtime``."""
    env = {**cli_env(), "PYTHONPATH": str(src)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stratus", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    loaded = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    return [name for name in HEAVY if name in loaded]


def extract(ref: str, into: Path) -> Path:
    """The ``src/`` tree of commit ``ref``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "src.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", ref, "src"], cwd=REPO, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="git commit to compare with (its src/ tree)")
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stratus-cli-startup-") as tmp:
        folder = Path(tmp)
        world = write_world(folder / "world")
        made = subprocess.run(
            [sys.executable, "-m", "stratus", "run", str(world)],
            cwd=world.parent,
            env={**cli_env(), "PYTHONPATH": str(REPO / "src")},
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            raise SystemExit(f"the test world's run failed:\n{made.stderr}")
        trees = [("now", REPO / "src")]
        if options.before:
            trees.insert(0, (f"before ({options.before})", extract(options.before, folder / "before")))
        commands = [["--help"], ["runs", "ls"], ["cost", "report", "--all-runs", "--by", "run"]]
        rows = []
        for label, src in trees:
            for args in commands:
                if args[0] == "runs" and label != "now":
                    continue  # no `runs` command before: `cost report --by run` was the way to list runs
                walls, cpus = measure(src, args, world.parent, options.runs)
                heavy = ", ".join(heavy_imports(src, args, world.parent)) or "none"
                rows.append(
                    f"| {label} | `stratus {' '.join(args)}` | {min(walls):.3f} s | "
                    f"{statistics.median(walls):.3f} s | {min(cpus):.3f} s | {statistics.median(cpus):.3f} s "
                    f"| {heavy} |"
                )
                print(rows[-1], flush=True)
    load = os.getloadavg()[0]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"## CLI start-up — {when}\n\n"
        f"Machine: {machine()}; load average {load:.1f} while measuring (a machine shared with other "
        f"work: the fastest run is the least disturbed). Code: {revision()}. {options.runs} fresh processes "
        "per command (`python -m bench.cli_startup`), against one real run of the test world. Target: "
        "`--help` and `runs ls` under 0.3 s. Before, every command imported every command module "
        "(the planner with SciPy, SQLAlchemy, pydantic, the serving stack); now each loads when named "
        "(`stratus.cli.lazy`), and `runs ls` reads the SQLite state file with the standard library.\n\n"
        "| code | command | wall, fastest | wall, median | CPU, fastest | CPU, median "
        "| heavy libraries imported |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"
    )
    replace_section(RESULTS, "CLI start-up", section)
    print(section)


if __name__ == "__main__":
    main()
