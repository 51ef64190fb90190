"""A run that crashes, for any reason, is recorded as failed with the reason; never left ``running``.

The crash here is a caller's own event callback raising at the run's first event (after the run row
exists, before any step starts): the public API's way to make the runner fail from outside.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from stratus.runner import RunEvent, run_file
from tests.run_world import write_world


class BoomError(Exception):
    pass


def explode(event: RunEvent) -> None:
    raise BoomError("the caller's event sink failed")


def test_a_crash_before_any_step_marks_the_run_failed_with_the_reason(tmp_path: Path) -> None:
    pipeline_file = write_world(tmp_path)
    with pytest.raises(BoomError):
        run_file(pipeline_file, on_event=explode)
    with sqlite3.connect(tmp_path / ".stratus" / "state.db") as conn:
        [(run_id, status, error)] = list(conn.execute("SELECT id, status, error FROM runs"))
    assert status == "failed"
    assert error == f"crashed: BoomError: the caller's event sink failed; resume with --resume {run_id}"
