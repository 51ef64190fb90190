"""``stratus run`` reads the platform and pipeline files once each (it used to parse both twice: once to
check budgets and count steps, again inside the runner).

Counted from outside our code: a Python audit hook in the CLI's process sees every ``open`` of the two
files, whatever reads them.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.run_world import one_json, run_python, write_world

COUNTING = textwrap.dedent(
    """
    import atexit, os, runpy, sys

    opened = {os.path.realpath(p): 0 for p in sys.argv[1:3]}

    def count(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.realpath(os.fsdecode(args[0]))
            if path in opened:
                opened[path] += 1

    sys.addaudithook(count)
    atexit.register(lambda: print("OPENED", *opened.values(), file=sys.stderr))
    sys.argv = ["stratus", *sys.argv[3:]]
    runpy.run_module("stratus", run_name="__main__")
    """
)


@pytest.mark.slow
def test_run_opens_each_file_once(tmp_path: Path) -> None:
    pipeline = write_world(tmp_path)
    platform = tmp_path / "stratus.yaml"
    script = tmp_path / "count_opens.py"
    script.write_text(COUNTING, encoding="utf-8")
    result = run_python(script, pipeline, platform, "run", pipeline, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert one_json(result.stdout)["status"] == "succeeded"
    assert result.stderr.splitlines()[-1] == "OPENED 1 1"  # pipeline, platform
