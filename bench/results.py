"""What every benchmark shares: the machine it ran on, the code it measured, and bench/RESULTS.md.

Benchmarks that record a history append their section; those that keep one current set of figures
replace their own section (every earlier one with the same title) and append the new one, so the file
stays newest-last either way.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib.metadata import version
from pathlib import Path

__all__ = ["REPO", "RESULTS", "RESULTS_HEADER", "append_section", "machine", "replace_section", "revision"]

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"
RESULTS_HEADER = (
    "# Benchmark results\n\n"
    "Appended by the benchmarks, newest last; each section names its machine. "
    "Tests never assert wall-clock time; these numbers are for people.\n"
)


def machine() -> str:
    """CPU model, usable cores, memory, and the library versions the timings depend on."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
        memory = f"{mem_kib / 1024**2:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        memory = "memory unknown"
    cores = len(os.sched_getaffinity(0))
    libs = ", ".join(f"{name} {version(name)}" for name in ("numpy", "scipy", "pydantic"))
    return f"{model}, {cores} cores (nproc), {memory}; Python {platform.python_version()}, {libs}"


def revision() -> str:
    """The commit measured, and whether src/ had uncommitted changes at the time."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"{sha}{' with uncommitted changes in src/' if dirty else ''}"


def append_section(results: Path, text: str) -> None:
    """Add ``text`` as the newest section."""
    existing = results.read_text(encoding="utf-8") if results.is_file() else RESULTS_HEADER
    results.write_text(existing.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n", encoding="utf-8")


def replace_section(results: Path, title: str, text: str) -> None:
    """Drop every earlier ``## {title}`` section (with its subsections) and append ``text``."""
    section = re.compile(rf"^## {re.escape(title)}\b.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    existing = results.read_text(encoding="utf-8") if results.is_file() else RESULTS_HEADER
    append_to = section.sub("", existing)
    results.write_text(append_to.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n", encoding="utf-8")
