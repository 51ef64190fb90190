"""Hostile input through the CLI: each case must end in exit 2, one clear message naming the file (with
its line) or the flag, and no traceback, quickly, without growing, hanging or writing anything.

Cases run ``python -m stratus`` in a subprocess with a timeout and an address-space cap, so a
regression (an alias bomb expanding, a FIFO read blocking) fails the test instead of the machine.
The limits themselves are in ``stratus.limits`` and listed in docs/hardening.md.
"""

from __future__ import annotations

import itertools
import os
import resource
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.run_world import pipeline, platform, stratus_cli, write_world

# A CLI subprocess needs well under 1 GiB; a YAML bomb expanding needs far more.
_ADDRESS_SPACE = 3 * 1024**3


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_ADDRESS_SPACE, _ADDRESS_SPACE))


def stratus(*args: str | Path, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m stratus ARGS`` with a memory cap; a hang is a TimeoutExpired, which fails the test."""
    return stratus_cli(*args, cwd=cwd, timeout=timeout, preexec_fn=_cap_memory)


def flat(text: str) -> str:
    """Whitespace and rich's box drawing folded, so assertions survive line wrapping."""
    return " ".join(text.translate(str.maketrans("│╭╮╰╯─", "      ")).split())


def bomb(width: int = 9) -> str:
    """The "billion laughs": nine levels of nine aliases each, 9**9 strings once expanded."""
    names = "abcdefghi"
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['lol'] * width)}]"]
    for prev, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * width)}]")
    return "\n".join(lines) + "\n"


def dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def with_site(name: str) -> str:
    spec = platform()
    spec["sites"][name] = spec["sites"]["cheap"]
    return dump(spec)


def deep_flow_list(depth: int) -> str:
    return dump(pipeline()) + "\n" + f"extra: {'[' * depth}{']' * depth}\n"


def deep_block_maps(depth: int) -> str:
    lines = [dump(platform()).rstrip(), "extra:"]
    lines += [f"{' ' * (level + 1)}k{level}:" for level in range(depth)]  # 1-space indents: 1.1 MB
    return "\n".join(lines) + " 1\n"


def step_named(name: str) -> str:
    spec = pipeline()
    spec["steps"] = {name if key == "combine" else key: step for key, step in spec["steps"].items()}
    return dump(spec)


def bad_pipeline_numbers() -> str:
    spec = pipeline()
    spec["datasets"]["numbers"]["size_gb"] = float("inf")
    spec["steps"]["square"].update(
        estimated_hours=1e308, exchange_gb=float("inf"), resources={"cpus": 1e300}, max_attempts=10**12
    )
    return dump(spec)


def bad_platform_numbers() -> str:
    spec = platform()
    spec["transfer_gbps"] = float("inf")
    spec["sites"]["cheap"]["offerings"][0]["price_per_hour_usd"] = 1e308
    spec["sites"]["cheap"]["compute"]["capacity"]["max_parallel_steps"] = 10**12
    return dump(spec)


def bad_pipeline_names() -> str:
    spec = yaml.safe_load(step_named("s" * 300))
    spec["datasets"]["numbers"]["site"] = ".."
    spec["steps"]["square"]["outputs"] = {"a/b": {}}
    spec["steps"]["square"]["register"] = {"model": "../m", "aliases": ["a.b"]}
    return dump(spec)


# (pipeline text or None, platform text or None, what the message must contain)
Case = tuple[str | None, str | None, tuple[str, ...]]

FILE_CASES: dict[str, Case] = {
    # YAML bombs and shapes
    "pipeline alias bomb": (
        dump(pipeline()) + bomb(),
        None,
        ("pipeline.yaml:", "aliases (*name) are expanded"),
    ),
    "platform alias bomb": (
        None,
        dump(platform()) + bomb(),
        ("stratus.yaml:", "aliases (*name) are expanded"),
    ),
    "too many aliases": (
        dump(pipeline()) + "x: &x 1\nmany: [" + ", ".join(["*x"] * 1_001) + "]\n",
        None,
        ("pipeline.yaml:", "more than 1,000 aliases"),
    ),
    "5,000-deep flow list": (
        deep_flow_list(5_000),
        None,
        ("pipeline.yaml:", "nested more than 64 levels deep"),
    ),
    "1,500-deep block maps": (
        None,
        deep_block_maps(1_500),
        ("stratus.yaml:", "nested more than 64 levels deep"),
    ),
    "NUL byte": ("name: flow\x00\n" + dump(pipeline()), None, ("pipeline.yaml:1:11:", "NUL byte")),
    "pipeline over the size cap": (
        dump(pipeline()) + ("# " + "x" * 1022 + "\n") * 2_100,
        None,
        ("pipeline.yaml", "larger than 2,097,152 bytes"),
    ),
    # numbers: finite and bounded; one file each, since every bad field is listed (up to five)
    "pipeline numbers .inf and 1e308": (
        bad_pipeline_numbers(),
        None,
        (
            "pipeline.yaml:",
            "datasets.numbers.size_gb: Input should be a finite number",
            "steps.square.estimated_hours: Input should be less than or equal to 10000",
            "steps.square.exchange_gb: Input should be a finite number",
            "steps.square.resources.cpus: Input should be less than or equal to 10000",
            "steps.square.max_attempts: Input should be less than or equal to 100",
        ),
    ),
    "platform numbers .inf and 1e308": (
        None,
        bad_platform_numbers(),
        (
            "stratus.yaml:",
            "transfer_gbps: Input should be a finite number",
            "sites.cheap.offerings[0].price_per_hour_usd: Input should be less than or equal to 1000000",
            "sites.cheap.compute.capacity.max_parallel_steps: Input should be less than or equal to 10000",
        ),
    ),
    # names: one safe pattern and a length limit
    "site named ../../../../outside/x": (
        None,
        with_site("../../../../outside/x"),
        ("stratus.yaml:", "'../../../../outside/x' is not a safe name"),
    ),
    "pipeline names": (
        bad_pipeline_names(),
        None,
        (
            "pipeline.yaml:",
            f"steps.{'s' * 300}: name '{'s' * 40}...' is 300 characters long; names have at most 63",
            "steps.square.outputs.a/b: name 'a/b' cannot be referenced",
            "steps.square.register.model: name '../m' is not a safe name",
            "steps.square.register.aliases[0]: 'a.b' is not a usable alias",
            "datasets.numbers.site: name '..' is not a safe name",
        ),
    ),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", list(FILE_CASES), ids=list(FILE_CASES))
def test_hostile_files_are_refused_with_the_file_and_place(case: str, tmp_path: Path) -> None:
    pipeline_text, platform_text, expected = FILE_CASES[case]
    write_world(tmp_path)
    if pipeline_text is not None:
        (tmp_path / "pipeline.yaml").write_text(pipeline_text, encoding="utf-8")
    if platform_text is not None:
        (tmp_path / "stratus.yaml").write_text(platform_text, encoding="utf-8")
    result = stratus("plan", "pipeline.yaml", cwd=tmp_path)
    assert_refused(result, expected)
    assert not (tmp_path / "outside").exists()


def fifo(folder: Path) -> Path:
    path = folder / "pipe.yaml"
    os.mkfifo(path)
    return path


# (argv after `stratus`, given the world's folder; what the message must contain)
SPECIAL_CASES: dict[str, tuple[Callable[[Path], list[str | Path]], tuple[str, ...]]] = {
    "--platform /dev/zero": (
        lambda w: ["plan", "pipeline.yaml", "--platform", "/dev/zero"],
        ("/dev/zero", "character device", "not a regular file"),
    ),
    "--platform /dev/urandom": (
        lambda w: ["plan", "pipeline.yaml", "--platform", "/dev/urandom"],
        ("/dev/urandom", "not a regular file"),
    ),
    "--platform FIFO": (
        lambda w: ["plan", "pipeline.yaml", "--platform", fifo(w)],
        ("pipe.yaml", "named pipe (FIFO)"),
    ),
    "pipeline FIFO": (lambda w: ["plan", fifo(w)], ("pipe.yaml", "named pipe (FIFO)")),
    "pipeline /dev/zero": (lambda w: ["run", "/dev/zero"], ("/dev/zero", "not a regular file")),
    "serve --port 99999": (
        lambda w: ["serve", "model.onnx", "--sites", "cheap", "--port", "99999"],
        ("--port", "99999", "1<=x<=65535"),
    ),
    "serve --port 0": (
        lambda w: ["serve", "model.onnx", "--sites", "cheap", "--port", "0"],
        ("--port", "1<=x<=65535"),
    ),
    "serve --name ../x": (
        lambda w: ["serve", "model.onnx", "--sites", "cheap", "--name", "../x"],
        ("--name", "'../x' is not a safe name"),
    ),
    "plan --time-limit nan": (
        lambda w: ["plan", "pipeline.yaml", "--time-limit", "nan"],
        ("--time-limit", "not a finite number"),
    ),
    "chaos --timeout inf": (
        lambda w: ["chaos", "kill-site", "cheap", "--timeout", "inf"],
        ("--timeout", "0.1<=x<=86400"),
    ),
    "catalog --limit -1": (lambda w: ["catalog", "--limit", "-1"], ("--limit", "x>=0")),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", list(SPECIAL_CASES), ids=list(SPECIAL_CASES))
def test_hostile_paths_and_flags_are_refused_before_anything_starts(case: str, tmp_path: Path) -> None:
    argv, expected = SPECIAL_CASES[case]
    write_world(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"not really onnx")
    result = stratus(*argv(tmp_path), cwd=tmp_path, timeout=60)
    assert_refused(result, expected)
    assert "gateway.json" not in result.stderr
    assert not (tmp_path / ".stratus" / "serve").exists(), "nothing of a deployment may be written"


def assert_refused(result: subprocess.CompletedProcess[str], expected: tuple[str, ...]) -> None:
    output = flat(result.stdout + result.stderr)
    assert result.returncode == 2, f"exit {result.returncode}:\n{output[-3000:]}"
    assert "Traceback" not in output
    for phrase in expected:
        assert phrase in output, f"{phrase!r} not in:\n{output[-3000:]}"


def run_rows(folder: Path) -> list[tuple[str, str, str | None]]:
    database = folder / ".stratus" / "state.db"
    if not database.exists():
        return []
    with sqlite3.connect(database) as conn:
        return list(conn.execute("SELECT id, status, error FROM runs"))


def attempt_rows(folder: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(folder / ".stratus" / "state.db") as conn:
        return list(conn.execute("SELECT step, status, error FROM step_runs"))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_run_with_an_infinite_size_is_refused_and_leaves_no_run_running(tmp_path: Path) -> None:
    write_world(tmp_path)
    spec = pipeline()
    spec["datasets"]["numbers"]["size_gb"] = float("inf")
    (tmp_path / "pipeline.yaml").write_text(dump(spec), encoding="utf-8")
    result = stratus("run", "pipeline.yaml", cwd=tmp_path, timeout=150)
    assert_refused(result, ("pipeline.yaml:", "datasets.numbers.size_gb", "finite"))
    assert [row for row in run_rows(tmp_path) if row[1] == "running"] == []


SOCKET_STEP = """

def socket_output(ctx):
    import os
    import socket
    folder = ctx.output("squares")
    folder.mkdir()
    (folder / "data.txt").write_text("1")
    os.chdir(folder)  # a socket's path must be short; this process is the step's own
    socket.socket(socket.AF_UNIX).bind("s.sock")  # a tar of this folder cannot hold a socket
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_attempt_that_crashes_inside_the_runner_is_recorded_failed_not_running(tmp_path: Path) -> None:
    path = write_world(
        tmp_path,
        pipeline_spec=pipeline(square={"run": "flow_steps:socket_output", "max_attempts": 1}),
    )
    with (tmp_path / "flow_steps.py").open("a", encoding="utf-8") as steps:
        steps.write(SOCKET_STEP)
    result = stratus("run", path.name, cwd=tmp_path, timeout=200)
    output = flat(result.stdout + result.stderr)
    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output
    attempts = attempt_rows(tmp_path)
    assert [row for row in attempts if row[1] == "running"] == [], attempts
    square = [row for row in attempts if row[0] == "square"]
    assert [status for _, status, _ in square] == ["failed"], attempts
    assert square[0][2], attempts
