"""Executors run real worker processes: exit codes, logs, timeouts, peak memory, preemption, limits.

Each test writes a tiny step module into its own folder and submits it exactly as the runner does.
"""

from __future__ import annotations

import socket
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from stratus.config import Resources, ServerlessSpec, Site
from stratus.errors import ConfigError, ExecutorError
from stratus.executors import (
    Executor,
    LocalExecutor,
    PricedPerUse,
    ServerlessExecutor,
    StepRequest,
    StepResult,
    SupportsPreemption,
    executor_for,
)

STEPS = textwrap.dedent(
    """
    import time

    def ok(ctx):
        ctx.log("hello from ok")
        print("line two")
        ctx.output("out").write_text(ctx.input("data").read_text().upper())
        return {"auc": 0.5, "rows": ctx.params.get("rows", 0)}

    def boom(ctx):
        raise ValueError("boom at row 7")

    def forgets(ctx):
        ctx.output("out").with_suffix(".npy").write_text("x")  # as np.save(path) does

    def sleeps(ctx):
        print("started", flush=True)
        time.sleep(float(ctx.params.get("seconds", 30)))
        ctx.output("out").write_text("late")

    def hog(ctx):
        block = bytearray(int(ctx.params["mb"]) * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        ctx.output("out").write_text(str(len(block)))

    def bad_metrics(ctx):
        ctx.output("out").write_text("x")
        return {"when": object()}

    def killed(ctx):
        import os, signal
        print("going down", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    def exits(ctx):
        import sys
        sys.exit(4)

    def refused(ctx):
        import socket
        with socket.create_connection(("127.0.0.1", ctx.params["port"]), timeout=5):
            pass
    """
)


@pytest.fixture
def code(tmp_path: Path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "unit_steps.py").write_text(STEPS, encoding="utf-8")
    (tmp_path / "data.txt").write_text("payload", encoding="utf-8")
    return folder


def request(
    code: Path, function: str, *, timeout_s: float | None = 60, memory_gb: float = 1.0, **params: object
) -> StepRequest:
    work = code.parent / "work" / function
    return StepRequest(
        run_id="r1",
        step=function,
        entrypoint=f"unit_steps:{function}",
        inputs={"dataset:data": code.parent / "data.txt"},
        outputs={"out": work / "outputs" / "out"},
        workdir=work,
        timeout_s=timeout_s,
        resources=Resources(cpus=0.1, memory_gb=memory_gb),
        python_path=[code],
        params=params,
    )


def finish(executor: Executor, req: StepRequest) -> StepResult:
    result = executor.submit(req).wait(timeout=60)
    assert result is not None, "the step did not end within 60 s"
    return result


def test_a_step_runs_in_its_workdir_writes_outputs_and_returns_metrics(code: Path) -> None:
    req = request(code, "ok", rows=3)
    handle = LocalExecutor("site-a").submit(req)
    lines = list(handle.logs())  # follows the log until the step ends
    result = handle.wait(timeout=60)
    assert result is not None
    assert result.ok, result.error
    assert result.exit_code == 0
    assert result.metrics == {"auc": 0.5, "rows": 3}
    assert (req.workdir / "outputs" / "out").read_text() == "PAYLOAD"
    assert "[ok] hello from ok" in lines
    assert "line two" in lines
    assert result.log_path == req.workdir / "step.log"
    assert result.duration_s > 0
    assert result.peak_memory_bytes > 10 * 1024 * 1024  # an interpreter, at least
    result.raise_for_failure("ok", "site-a")  # no error on success


def test_a_raising_step_reports_exit_1_and_the_exception_in_words(code: Path) -> None:
    result = finish(LocalExecutor("site-a"), request(code, "boom"))
    assert not result.ok
    assert result.exit_code == 1
    assert result.failure == "error"
    assert result.error_class == "user"
    assert result.error == "raised ValueError: boom at row 7"
    assert "Traceback" in (result.log_path or Path()).read_text()
    with pytest.raises(ExecutorError) as caught:
        result.raise_for_failure("boom", "site-a")
    assert str(caught.value).startswith("step 'boom' at site site-a: raised ValueError: boom at row 7 (log: ")


def test_a_step_that_misses_an_output_is_told_which_path_to_write(code: Path) -> None:
    result = finish(LocalExecutor("site-a"), request(code, "forgets"))
    assert result.failure == "error"
    assert result.error_class == "user"
    assert result.error is not None
    assert "the step did not write its outputs: out → " in result.error
    assert "found out.npy: write exactly ctx.outputs['out']" in result.error


def test_metrics_must_be_json(code: Path) -> None:
    result = finish(LocalExecutor("site-a"), request(code, "bad_metrics"))
    assert result.exit_code == 1
    assert "metrics are not JSON-serialisable" in (result.error or "")


def test_a_missing_entry_point_exits_2_naming_it(code: Path) -> None:
    req = request(code, "ok")
    broken = StepRequest(**{**req.__dict__, "entrypoint": "unit_steps:nope"})
    result = finish(LocalExecutor("site-a"), broken)
    assert result.exit_code == 2
    assert result.error is not None
    assert result.error.startswith("cannot import unit_steps:nope: AttributeError: module 'unit_steps' (")
    assert "has no function 'nope'" in result.error


def test_a_step_past_its_timeout_is_killed_and_says_so(code: Path) -> None:
    result = finish(LocalExecutor("site-a"), request(code, "sleeps", timeout_s=1.5))
    assert result.failure == "timeout"
    assert result.exit_code == -9
    assert result.error == "timed out after 1.5 s"
    assert result.duration_s < 20


def test_peak_memory_is_the_childs_own(code: Path) -> None:
    executor = LocalExecutor("site-a")
    small = executor.submit(request(code, "ok"))
    big = executor.submit(request(code, "hog", mb=300))
    small_result, big_result = small.wait(60), big.wait(60)
    assert small_result is not None
    assert big_result is not None
    assert big_result.ok, big_result.error
    assert big_result.peak_memory_bytes >= 300 * 1024 * 1024
    assert small_result.peak_memory_bytes < big_result.peak_memory_bytes - 200 * 1024 * 1024


def test_preempt_kills_the_step_and_reports_preempted(code: Path) -> None:
    handle = LocalExecutor("site-a").submit(request(code, "sleeps"))
    lines = handle.logs()
    assert next(lines) == "started"
    handle.preempt()
    result = handle.wait(timeout=30)
    assert result is not None
    assert result.preempted
    assert result.failure == "preempted"
    assert result.error == "preempted: the machine was reclaimed (spot) while the step ran"
    assert result.metrics == {}


def test_cancel_stops_the_step(code: Path) -> None:
    handle = LocalExecutor("site-a").submit(request(code, "sleeps"))
    assert next(handle.logs()) == "started"
    handle.cancel()
    result = handle.wait(timeout=30)
    assert result is not None
    assert result.failure == "cancelled"
    assert not result.preempted


def fn_site(**limits: object) -> ServerlessExecutor:
    spec = ServerlessSpec.model_validate({"max_memory_gb": 1, "max_duration_s": 60, **limits})
    return ServerlessExecutor("fn-eu", spec)


def test_serverless_kills_a_step_over_its_function_memory_with_a_clear_error(code: Path) -> None:
    result = finish(fn_site(), request(code, "hog", memory_gb=0.25, mb=600))
    assert result.failure == "memory"
    assert result.exit_code == 3
    with pytest.raises(ExecutorError) as caught:
        result.raise_for_failure("hog", "fn-eu")
    message = str(caught.value)
    assert message.startswith("step 'hog' at site fn-eu: exceeded its memory limit of 0.25 GB")
    assert "compute.serverless.max_memory_gb = 1" in message


def test_serverless_runs_a_step_within_its_memory(code: Path) -> None:
    result = finish(fn_site(), request(code, "hog", memory_gb=0.5, mb=100))
    assert result.ok, result.error


def test_serverless_refuses_a_step_larger_than_the_site_allows(code: Path) -> None:
    with pytest.raises(ExecutorError) as caught:
        fn_site().submit(request(code, "ok", memory_gb=4))
    assert str(caught.value) == (
        "step 'ok' at site fn-eu: needs a 4 GB function but this site allows at most 1 GB "
        "(compute.serverless.max_memory_gb); ask for less memory or run it on a VM site"
    )


def test_serverless_enforces_its_duration_limit(code: Path) -> None:
    result = finish(fn_site(max_duration_s=1.5), request(code, "sleeps", memory_gb=0.25))
    assert result.failure == "timeout"
    assert result.error == (
        "timed out after 1.5 s (the function duration limit at site fn-eu: compute.serverless.max_duration_s)"
    )


def test_serverless_prices_gb_seconds_rounded_up_to_the_millisecond_plus_the_request() -> None:
    executor = fn_site(usd_per_gb_second=0.00002, usd_per_request=0.0000004, gb_per_vcpu=2)
    # 2 vCPUs buy 4 GB, more than the 1 GB asked for: the function is 4 GB.
    cost = executor.cost_usd(Resources(cpus=2, memory_gb=1), duration_s=1.2341)
    assert cost == Decimal("0.00002") * 4 * Decimal("1.235") + Decimal("0.0000004")


def site(backend: str) -> Site:
    return Site.model_validate(
        {"provider": "local", "region": "here", "storage": "file://x", "compute": {"backend": backend}}
    )


def test_the_registry_maps_backends_to_executors_with_capabilities_as_types() -> None:
    local = executor_for("a", site("local"))
    function = executor_for("b", site("serverless"))
    assert isinstance(local, LocalExecutor)
    assert isinstance(local, SupportsPreemption)
    assert isinstance(function, PricedPerUse)
    assert not isinstance(function, SupportsPreemption)
    assert function.site == "b"
    with pytest.raises(ConfigError) as caught:
        executor_for("k8s", site("kubernetes"))
    assert str(caught.value) == (
        "sites.k8s.compute.backend: site 'k8s' uses compute.backend 'kubernetes', which this version "
        "cannot run yet; use one of: local, serverless, ray"
    )


def test_a_worker_killed_by_a_signal_has_crashed_an_infrastructure_failure(code: Path) -> None:
    result = finish(LocalExecutor("site-a"), request(code, "killed"))
    assert (result.exit_code, result.failure, result.error_class) == (-9, "crashed", "infrastructure")
    assert result.error == "killed by SIGKILL; last log lines:\n  going down"


def test_sys_exit_in_step_code_is_the_steps_own_error(code: Path) -> None:
    result = finish(LocalExecutor("site-a"), request(code, "exits"))
    assert (result.exit_code, result.failure, result.error_class) == (1, "error", "user")
    assert result.error == "called sys.exit(4); return from the step function instead"


def test_step_code_that_cannot_connect_is_unreachable_an_infrastructure_failure(code: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connecting is refused
    result = finish(LocalExecutor("site-a"), request(code, "refused", port=port))
    assert (result.exit_code, result.failure, result.error_class) == (1, "unreachable", "infrastructure")
    assert result.error is not None
    assert result.error.startswith("raised ConnectionRefusedError: [Errno 111] ")
