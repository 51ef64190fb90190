"""``stratus run`` when things break: whose failure it was, sites that are down, and live step logs.

Each test is a small world (tests/run_world.py) run through the real CLI in a subprocess, as a user runs
it. A step's code failing runs once and shows its log; a worker killed by a signal is retried; a site
whose store does not answer is marked down and the run finishes elsewhere; log lines arrive while the
step is still running (the step blocks until the test has seen its line, so no clock is involved).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from stratus.state import Repository, open_database, state_url
from tests.run_world import cli_env, one_json, pipeline, platform, stratus_cli, write_world

pytestmark = pytest.mark.slow

EXTRA_STEPS = textwrap.dedent(
    """
    import os
    import signal
    import time
    from pathlib import Path

    def broken(ctx):
        ctx.log("loading 3 shards")
        for i in range(30):
            print(f"shard line {i}")
        raise ValueError("column 'amount' has 3 negative values")

    def dies_once(ctx):
        marker = Path(ctx.params["marker"])
        if not marker.exists():
            marker.write_text("killed")
            ctx.log("about to be killed")
            os.kill(os.getpid(), signal.SIGKILL)
        ctx.output("squares").write_text(ctx.input("numbers").read_text())
        return {"survived": 1}

    def waits(ctx):
        ctx.log("epoch 1 loss 0.50")
        go = Path(ctx.params["go"])
        for _ in range(600):  # 30 s at most: a runner that never shows the line fails the test, not CI
            if go.exists():
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("the test never saw the first log line")
        ctx.log("epoch 2 loss 0.21")
        ctx.output("squares").write_text(ctx.input("numbers").read_text())

    def breaks_its_site(ctx):
        # The step's own site loses its object store while the step runs (as an outage would).
        root = Path(ctx.params["store"])
        if root.is_dir():
            root.rename(root.with_name(root.name + ".gone"))
            root.write_text("not a store any more")
        ctx.output("squares").write_text(ctx.input("numbers").read_text())
    """
)


def world(folder: Path, spec: dict[str, Any], platform_spec: dict[str, Any] | None = None) -> Path:
    path = write_world(folder, pipeline_spec=spec, platform_spec=platform_spec)
    (folder / "more_steps.py").write_text(EXTRA_STEPS, encoding="utf-8")
    return path


def one_step(step: dict[str, Any]) -> dict[str, Any]:
    """The world's pipeline cut down to ``dataset:numbers → square``, with ``step`` merged into square."""
    spec = pipeline(square=step)
    spec["steps"] = {"square": spec["steps"]["square"]}
    spec["steps"]["square"].pop("replicate")
    return spec


def attempts_in_state(path: Path, run_id: str, step: str) -> list[str]:
    repo = Repository(open_database(state_url(path.parent / "stratus.yaml", None)))
    return [a.status for a in repo.attempts(run_id) if a.step == step]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_step_that_raises_runs_once_and_shows_its_log_tail(tmp_path: Path) -> None:
    path = world(tmp_path, one_step({"run": "more_steps:broken"}))
    result = stratus_cli("run", path, "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    payload = one_json(result.stdout)
    [square] = payload["steps"]
    assert (square["status"], square["attempts"], square["error_class"]) == ("failed", 1, "user")
    assert square["error"].startswith("raised ValueError: column 'amount' has 3 negative values (log: ")
    assert square["log_path"].endswith("/square/attempt-1/step.log")
    assert len(square["log_tail"]) == 20
    assert square["log_tail"][-1] == "ValueError: column 'amount' has 3 negative values"
    assert "shard line 29" in square["log_tail"]
    assert attempts_in_state(path, payload["run_id"], "square") == ["failed"]
    # stderr carries the same story for a person: the tail, the log's path, no retry.
    err = result.stderr
    assert "retrying" not in err
    assert "square failed at cheap: an error in the step's code after 1 attempt(s)" in err
    assert f"last 20 lines of {square['log_path']}:" in err
    assert "  | ValueError: column 'amount' has 3 negative values" in err
    assert (
        "failed: step 'square' failed in its own code, so it was not retried "
        "(set retry_on_error: true to retry it): raised ValueError" in " ".join(err.split())
    )

    human = stratus_cli("run", path, cwd=tmp_path)
    assert human.returncode == 1
    out = human.stdout
    assert "[square@cheap] loading 3 shards" in out  # ctx.log's own "[square]" prefix is not doubled
    assert "  | shard line 29" in out
    assert "square failed at cheap: an error in the step's code after 1 attempt(s)" in out


def test_retry_on_error_opts_a_step_back_into_retries(tmp_path: Path) -> None:
    flaky = {
        "run": "flow_steps:flaky",
        "params": {"marker": str(tmp_path / "m"), "fail_times": 1},
        "retry_on_error": True,
    }
    path = world(tmp_path, one_step(flaky))
    result = stratus_cli("run", path, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [square] = one_json(result.stdout)["steps"]
    assert (square["status"], square["attempts"], square["error_class"]) == ("succeeded", 2, None)
    assert "square: attempt 1 failed at cheap (raised RuntimeError: flaky failure 1 (log: " in result.stderr
    assert "an error in the step's code, retrying in " in result.stderr


def test_a_step_killed_by_a_signal_is_an_infrastructure_failure_and_is_retried(tmp_path: Path) -> None:
    path = world(
        tmp_path, one_step({"run": "more_steps:dies_once", "params": {"marker": str(tmp_path / "k")}})
    )
    result = stratus_cli("run", path, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = one_json(result.stdout)
    [square] = payload["steps"]
    assert (square["status"], square["attempts"], square["metrics"]) == ("succeeded", 2, {"survived": 1})
    assert attempts_in_state(path, payload["run_id"], "square") == ["failed", "succeeded"]
    err = " ".join(result.stderr.split())
    assert "square: attempt 1 failed at cheap (killed by SIGKILL; last log lines:" in err
    assert "an infrastructure failure, retrying in " in err


def test_a_site_whose_store_is_down_at_plan_time_is_planned_around(tmp_path: Path) -> None:
    # "fast" is the cheapest site, so the planner wants every step there; its store is an S3 endpoint
    # on a closed port. The same pipeline file runs, unedited, on the sites that answer.
    spec = platform()
    spec["sites"] = {
        "fast": {
            **spec["sites"]["cheap"],
            "region": "dc-fast",
            "storage": "s3://bucket/stratus",
            "storage_options": {
                "endpoint_url": f"http://127.0.0.1:{closed_port()}",
                "key": "k",
                "secret": "s",
            },
            "offerings": [{"name": "node-fast", "vcpus": 4, "memory_gb": 8, "price_per_hour_usd": 0.2}],
        },
        **spec["sites"],
    }
    two = pipeline()
    two["steps"] = {name: two["steps"][name] for name in ("square", "total")}
    path = world(tmp_path, two, spec)
    plan = stratus_cli("plan", path, "--json", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert {p["site"] for p in one_json(plan.stdout)["steps"]} == {"fast"}

    result = run_cli(tmp_path, "run", path, "--json")
    assert result.returncode == 0, result.stderr
    payload = one_json(result.stdout)
    assert [(s["step"], s["status"], s["site"], s["attempts"]) for s in payload["steps"]] == [
        ("square", "succeeded", "cheap", 1),
        ("total", "succeeded", "cheap", 1),
    ]
    [down] = payload["sites_down"]
    assert down["site"] == "fast"
    assert down["reason"].startswith("its store s3://bucket/stratus ")
    [replan] = payload["replans"]
    assert replan["cause"] == f"site fast is down ({down['reason']})"
    assert replan["moved"] == [
        {"step": "square", "from": "fast", "to": "cheap"},
        {"step": "total", "from": "fast", "to": "cheap"},
    ]
    assert f"site fast is down ({down['reason']}); re-planned steps square, total onto cheap" in " ".join(
        result.stderr.split()
    )


def test_a_site_that_fails_under_a_step_is_down_for_every_later_step(tmp_path: Path) -> None:
    spec = pipeline(
        square={"run": "more_steps:breaks_its_site", "params": {"store": str(tmp_path / "sites" / "cheap")}}
    )
    spec["datasets"]["numbers"]["replicas"] = ["backup"]
    path = world(tmp_path, spec)
    result = stratus_cli("run", path, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = one_json(result.stdout)
    # Only square met the outage; every step after it was planned straight onto backup, once.
    assert [(s["step"], s["status"], s["site"], s["attempts"]) for s in payload["steps"]] == [
        ("square", "succeeded", "backup", 2),
        ("total", "succeeded", "backup", 1),
        ("evens", "succeeded", "backup", 1),
        ("combine", "succeeded", "backup", 1),
    ]
    [down] = payload["sites_down"]
    assert down["site"] == "cheap"
    assert "StorageError: site cheap (file://sites/cheap)" in down["reason"]
    moved = {m["step"]: (m["from"], m["to"]) for m in payload["replans"][-1]["moved"]}
    assert moved == dict.fromkeys(("square", "total", "evens", "combine"), ("cheap", "backup"))
    assert "site cheap is down (" in result.stderr
    assert "re-planned steps square, total, evens, combine onto backup" in " ".join(result.stderr.split())


def test_step_logs_stream_while_the_step_runs_prefixed_by_step_and_site(tmp_path: Path) -> None:
    go = tmp_path / "go"
    path = world(tmp_path, one_step({"run": "more_steps:waits", "params": {"go": str(go)}}))
    process = subprocess.Popen(
        [sys.executable, "-m", "stratus", "run", str(path)],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(process.stderr or []), daemon=True)
    drain.start()
    seen: list[str] = []
    released_after_first_line = False
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if "[square@cheap] epoch 1 loss 0.50" in line:
                released_after_first_line = "epoch 2" not in "".join(seen)
                go.touch()  # only now may the step go on: the line was shown while it was blocked
    finally:
        code = process.wait(timeout=120)
        drain.join(timeout=10)
    out = "".join(seen)
    assert code == 0, out + "".join(stderr)
    assert released_after_first_line, out
    assert "[square@cheap] epoch 2 loss 0.21" in out
    [done] = [line for line in seen if line.startswith("  square ") and " succeeded " in line]
    assert out.index("epoch 1 loss") < out.index("epoch 2 loss") < out.index(done)


def run_cli(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """The CLI with a short store probe, so a closed port is judged in about a second."""
    return subprocess.run(
        [sys.executable, "-m", "stratus", *map(str, args)],
        cwd=cwd,
        env={**cli_env(), "STRATUS_PROBE_TIMEOUT_S": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
