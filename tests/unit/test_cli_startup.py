"""The CLI starts fast: ``stratus --help`` and ``stratus runs ls`` import no heavy library.

Guarded by what a fresh interpreter imports (``python -X importtime``), never by a stopwatch: a command
module that imports the planner, pandas or MLflow at its top would put a second back on every call.
Also: a mistyped command gets one suggestion, not Typer's and Click's both.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stratus.cli.app import COMMANDS, app
from tests.run_world import run_python

#: Never imported by `--help` or `runs ls` (SQLAlchemy and pydantic included: the default SQLite state
#: file is read with the standard library, and no file is parsed).
HEAVY = ("pandas", "pyarrow", "scipy", "numpy", "onnxruntime", "mlflow", "torch", "sqlalchemy", "pydantic",
         "yaml", "fsspec", "boto3", "botocore", "psutil", "stratus.planner", "stratus.runner")  # fmt: skip


def imported(args: list[str], cwd: Path) -> set[str]:
    """Every module ``python -m stratus ARGS`` imported, from ``-X importtime``."""
    result = run_python("-X", "importtime", "-m", "stratus", *args, cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return {
        line.rsplit("|", 1)[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time")
    }


@pytest.mark.parametrize("args", [["--help"], ["runs", "ls"], ["runs", "ls", "--json"]])
def test_no_heavy_library_is_imported(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "stratus.yaml").write_text("sites: {}\n", encoding="utf-8")
    state = tmp_path / ".stratus"
    state.mkdir()
    # A state database with a runs table, so `runs ls` really queries it.
    with sqlite3.connect(state / "state.db") as db:
        db.execute(
            "CREATE TABLE runs (id TEXT, pipeline TEXT, status TEXT, error TEXT, runner TEXT, "
            "created_at TEXT, finished_at TEXT)"
        )
        db.execute(
            "INSERT INTO runs VALUES ('r1', 'flow', 'succeeded', NULL, NULL, '2026-01-01 10:00:00', NULL)"
        )
    modules = imported(args, tmp_path)
    assert "stratus.cli.app" in modules  # the measurement saw our code
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY) == []


#: What only `serve start` needs (it plans, opens stores, reads the registry); the rest of the serve group
#: (status, stop, ls, drain, scale) runs many times in every serving test and drill.
SERVE_START_ONLY = ("stratus.runner", "stratus.planner", "stratus.policy", "stratus.registry", "scipy",
                    "numpy", "mlflow", "onnxruntime", "fsspec")  # fmt: skip


@pytest.mark.parametrize("args", [["serve", "ls", "--json"], ["serve", "stop"]])
def test_serve_admin_commands_do_not_load_what_only_start_needs(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "stratus.yaml").write_text("sites: {}\n", encoding="utf-8")
    modules = imported(args, tmp_path)
    assert "stratus.cli.serve_admin_cmd" in modules  # the measurement saw the serve group load
    loaded = sorted(m for m in modules if any(m == h or m.startswith(f"{h}.") for h in SERVE_START_ONLY))
    assert loaded == []


def test_help_lists_every_command_without_loading_them() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name, spec in COMMANDS.items():
        assert f" {name} " in result.output
        assert spec.summary[:40] in result.output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_loads_and_answers_help(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "--install-completion" not in result.output  # a group, as add_typer made it


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (["plam"], "No such command 'plam'. Did you mean 'plan'?"),
        (["runs", "lss"], "No such command 'lss'. Did you mean 'ls'?"),
        (["cost", "reprt"], "No such command 'reprt'. (Did you mean one of: 'export', 'report'?)"),
    ],
)
def test_a_wrong_command_gets_one_suggestion(args: list[str], suggestion: str) -> None:
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 2
    assert suggestion in result.output
    assert result.output.count("Did you mean") == 1
