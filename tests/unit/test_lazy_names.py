"""Packages load their names on first use (stratus._lazy) and still behave as eager imports did."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.run_world import cli_env


def _fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter (this one has imported everything already)."""
    result = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_function_named_like_its_submodule_is_the_function() -> None:
    """``stratus.ledger.report`` is a function, though importing it loads module stratus.ledger.report."""
    out = _fresh(
        "from stratus.ledger import GROUP_BY, report, run_ids\n"
        "import stratus.ledger\n"
        "print(type(report).__name__, type(stratus.ledger.report).__name__)"
    )
    assert out == "function function"


def test_finding_state_and_platform_imports_neither_sqlalchemy_nor_pydantic() -> None:
    out = _fresh(
        "import sys\n"
        "from stratus.state import state_dir\n"
        "from stratus.config import resolve_platform_path, PLATFORM_ENV\n"
        "from stratus.ledger import format_usd\n"
        "print(sorted(m for m in ('sqlalchemy', 'pydantic', 'yaml', 'scipy') if m in sys.modules))"
    )
    assert out == "[]"


def test_every_table_is_created_whatever_was_imported(tmp_path: Path) -> None:
    """A database opened before the ledger package was used still gets the ledger's table."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    _fresh(f"from stratus.state import open_database\nopen_database({url!r})")
    with sqlite3.connect(tmp_path / "state.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "step_runs", "run_cancels", "locks", "ledger", "audit"} <= tables


def test_the_step_worker_imports_neither_pydantic_nor_the_executors() -> None:
    """Every step starts a fresh ``python -m stratus.executors.worker``: it needs only the step API."""
    out = _fresh(
        "import sys\n"
        "import stratus.executors.worker\n"
        "heavy = ('pydantic', 'yaml', 'sqlalchemy', 'stratus.config', 'stratus.executors.base',\n"
        "         'stratus.executors.local', 'stratus.executors.ray_jobs', 'stratus.executors.registry')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    assert out == "[]"


def test_the_executors_package_still_offers_every_name() -> None:
    out = _fresh(
        "import stratus.executors as e\n"
        "from stratus.executors import LocalExecutor, executor_for\n"
        "print(LocalExecutor.__module__, executor_for.__module__, sorted(set(e.__all__) - set(dir(e))))"
    )
    assert out == "stratus.executors.local stratus.executors.registry []"
