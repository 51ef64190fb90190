"""``ray``: each step is a Ray job on an existing cluster, submitted through its Jobs API.

The job's entrypoint is the same worker the local executor starts (``python -m
stratus.executors.worker REQUEST.json``), so step code, outputs, metrics and failure classes are
unchanged. The request file, inputs and outputs are paths in the step's working directory: the cluster's
nodes must see that folder at the same path. On a local cluster (``stratus sandbox up --ray``) they do;
a remote cluster (KubeRay, ``ray up``) needs it on shared storage (NFS, EFS, Filestore) mounted at the
same path on the runner and every node. Nothing is uploaded as a ``working_dir``: the pipeline's folder
holds the sites' data, and the inputs have to be shared anyway.

The step's resources become the job's entrypoint resources (CPUs, memory, GPUs, and the accelerator
type as Ray's ``accelerator_type:NAME`` resource), so Ray places the job on a node that has them. The
job's log is streamed (``tail_job_logs``) into the step's log file, which the runner follows as for a
local step. How the job ended maps onto the same :class:`StepResult` as a local process: the worker's
report decides a step's own failure; a job whose node died (its supervisor actor died) was
``preempted``, an infrastructure failure the runner fails over from.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import shlex
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stratus.errors import ExecutorError
from stratus.executors.base import (
    FailureKind,
    Handle,
    StepRequest,
    StepResult,
    SupportsGangs,
    SupportsPreemption,
    SupportsProbe,
)
from stratus.executors.process import (
    LOG_FILE,
    RESULT_FILE,
    exit_words,
    follow_log,
    read_report,
    write_request,
)
from stratus.executors.ray_gang import MARKER

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

__all__ = [
    "RAY_INSTALL_HINT",
    "JobPart",
    "RayExecutor",
    "RayJob",
    "bundle",
    "classify_job",
    "job_resources",
    "probe_ray",
]

RAY_INSTALL_HINT = "pip install 'stratus[ray]'"
POLL_S = 0.1  # how often a job's status is read; the bare-Ray baseline in bench/engines polls as often
LOST_AFTER_S = 30.0  # a Jobs API that fails every status read this long has lost the job
_NODE_DIED = ("JOB_SUPERVISOR_ACTOR_DIED",)
_NOT_STARTED = (
    "RUNTIME_ENV_SETUP_FAILURE",
    "JOB_SUPERVISOR_ACTOR_START_TIMEOUT",
    "JOB_SUPERVISOR_ACTOR_START_FAILURE",
    "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE",
    "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE",
    "JOB_ENTRYPOINT_COMMAND_START_ERROR",
)


def probe_ray(address: str, timeout_s: float) -> str | None:
    """None when the cluster's Jobs API answers ``/api/version`` within ``timeout_s``; else why not.

    A plain HTTP GET with a deadline: ``JobSubmissionClient`` itself waits on a dead address with no
    timeout at all.
    """
    if importlib.util.find_spec("ray") is None:
        return f"Ray is not installed here ({RAY_INSTALL_HINT})"
    url = address.rstrip("/") + "/api/version"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            version = json.loads(response.read()).get("ray_version")
    except (OSError, ValueError, urllib.error.URLError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return f"its Ray cluster at {address} does not answer ({reason})"
    return None if version else f"{address} answered, but not as a Ray Jobs API"


def job_resources(request: StepRequest) -> dict[str, Any]:
    """The step's resources as ``submit_job`` keywords: what the node that runs the job must have."""
    resources = request.resources
    keywords: dict[str, Any] = {
        "entrypoint_num_cpus": resources.cpus,
        "entrypoint_memory": int(resources.memory_gb * 1e9),
    }
    accelerator = resources.accelerators
    if accelerator is not None:
        keywords["entrypoint_num_gpus"] = accelerator.count
        # Ray's own convention: a node with NAME devices has ``accelerator_type:NAME`` = 1; asking for a
        # sliver of it pins the job to such a node without counting devices twice.
        keywords["entrypoint_resources"] = {f"accelerator_type:{accelerator.name}": 0.001}
    return keywords


class RayExecutor(SupportsPreemption, SupportsProbe, SupportsGangs):
    """Submits steps to one Ray cluster; its nodes may be spot VMs, so a lost node is a preemption."""

    name = "ray"

    def __init__(self, site: str, address: str) -> None:
        self.site = site
        self.address = address.rstrip("/")
        self._client: JobSubmissionClient | None = None
        self._lock = threading.Lock()

    def probe(self, timeout_s: float) -> str | None:
        """None when the cluster answers; else why not (see :func:`probe_ray`)."""
        return probe_ray(self.address, timeout_s)

    def client(self, step: str = "") -> JobSubmissionClient:
        """The Jobs API client, made once; ExecutorError naming the site and address when unreachable."""
        with self._lock:
            if self._client is None:
                why = self.probe(10.0)
                if why is not None:
                    raise ExecutorError(why, step=step or None, site=self.site)
                from ray.job_submission import JobSubmissionClient  # an extra: imported only when used

                # The SDK logs every closed log stream at INFO; the step's own log says what matters.
                logging.getLogger("ray.dashboard.modules.job.sdk").setLevel(logging.WARNING)
                try:
                    self._client = JobSubmissionClient(self.address)
                except Exception as exc:  # a version check or an unexpected answer, in the SDK's words
                    message = f"cannot use the Ray cluster at {self.address}: {exc}"
                    raise ExecutorError(message, step=step or None, site=self.site) from exc
            return self._client

    def submit(self, request: StepRequest) -> Handle:
        """Write the request file and submit the worker as a Ray job; return at once."""
        request_file = write_request(request, self.site, memory_limit_bytes=None)
        entrypoint = shlex.join(["python", "-m", "stratus.executors.worker", str(request_file)])
        job = RayJob(self, request, [request.workdir], entrypoint, request.env, job_resources(request))
        return JobPart(job, 0)

    def submit_gang(self, requests: Sequence[StepRequest]) -> list[Handle]:
        """One Ray job for all ranks of a distributed step: a placement group with a bundle per rank
        (see :mod:`stratus.executors.ray_gang`); one handle per rank, in rank order."""
        first = requests[0]
        ranks = [
            {"request": str(write_request(r, self.site, memory_limit_bytes=None)), "env": dict(r.env)}
            for r in requests
        ]
        gang_file = first.workdir / "gang.json"
        gang_file.write_text(json.dumps({"ranks": ranks, "bundle": bundle(first)}), encoding="utf-8")
        entrypoint = shlex.join(["python", "-m", "stratus.executors.ray_gang", str(gang_file)])
        shared = {k: v for k, v in first.env.items() if all(r.env.get(k) == v for r in requests)}
        job = RayJob(self, first, [r.workdir for r in requests], entrypoint, shared, {})
        return [JobPart(job, i) for i in range(len(requests))]


def bundle(request: StepRequest) -> dict[str, float]:
    """One rank's resources as a placement-group bundle (Ray's resource names)."""
    resources = request.resources
    shape: dict[str, float] = {"CPU": resources.cpus, "memory": float(int(resources.memory_gb * 1e9))}
    if resources.accelerators is not None:
        shape["GPU"] = float(resources.accelerators.count)
        shape[f"accelerator_type:{resources.accelerators.name}"] = 0.001
    return shape


class JobPart(Handle):
    """The handle of one step (or one rank of a gang) that runs inside a :class:`RayJob`."""

    def __init__(self, job: RayJob, index: int) -> None:
        self.job = job
        self.index = index
        self.log_path = job.log_paths[index]

    def wait(self, timeout: float | None = None) -> StepResult | None:
        """The result once the job has ended and its log is written; None when ``timeout`` passes first."""
        if not self.job.done.wait(timeout):
            return None
        return self.job.results[self.index]

    def logs(self) -> Iterator[str]:
        """Lines of this part's log as they arrive, until the job has ended and all are read."""
        return follow_log(self.log_path, self.job.done)

    def cancel(self) -> None:
        """``stop_job``: Ray sends SIGTERM to the entrypoint's process group, then SIGKILL."""
        self.job.stop("cancelled")

    def preempt(self) -> None:
        """Stop the job as a reclaimed spot node would end it; its result reports ``preempted``."""
        self.job.stop("preempted")


class RayJob:
    """One submitted Ray job: a thread follows its status, another streams its log into the step's log
    (a gang's into one log per rank, split on the ``[rank N]`` prefixes)."""

    def __init__(
        self,
        executor: RayExecutor,
        request: StepRequest,
        workdirs: Sequence[Path],
        entrypoint: str,
        env: Mapping[str, str],
        resources: Mapping[str, Any],
    ) -> None:
        self.site = executor.site
        self.step = request.step
        self.log_paths = [w / LOG_FILE for w in workdirs]
        self._result_paths = [w / RESULT_FILE for w in workdirs]
        self._gang = len(workdirs) > 1
        self._timeout_s = request.timeout_s
        self._client = executor.client(request.step)
        self._cause: FailureKind | None = None
        self._lock = threading.Lock()
        self.done = threading.Event()
        self._log_lock = threading.Lock()
        self._final = False
        self._pending = ""  # a gang's incomplete last line, until the rest of it arrives
        self._outcomes: dict[int, str] = {}
        self.results: list[StepResult] = []
        self._started = time.monotonic()
        for path in self.log_paths:
            path.write_bytes(b"")
        self.job_id = f"stratus-{request.run_id}-{request.step.replace(':', '-')}-{uuid.uuid4().hex[:8]}"
        try:
            self._client.submit_job(
                entrypoint=entrypoint,
                submission_id=self.job_id,
                runtime_env={"env_vars": {**env, "PYTHONUNBUFFERED": "1"}},
                metadata={"stratus_run": request.run_id, "stratus_step": request.step},
                **resources,
            )
        except Exception as exc:  # the SDK raises RuntimeError/ConnectionError with the server's words
            message = f"the Ray cluster at {executor.address} refused the job: {exc}"
            raise ExecutorError(message, step=self.step, site=self.site) from exc
        self._timer: threading.Timer | None = None
        if self._timeout_s is not None:
            self._timer = threading.Timer(self._timeout_s, self.stop, ("timeout",))
            self._timer.daemon = True
            self._timer.start()
        threading.Thread(target=self._stream, name=f"ray-log-{self.step}", daemon=True).start()
        threading.Thread(target=self._watch, name=f"ray-job-{self.step}", daemon=True).start()

    def stop(self, cause: FailureKind) -> None:
        """Stop the job (all its ranks), remembering why, unless it has already ended."""
        with self._lock:
            if self.done.is_set():
                return
            if self._cause is None:
                self._cause = cause
        with contextlib.suppress(Exception):  # ended already, or the cluster is gone: _watch says which
            self._client.stop_job(self.job_id)

    def _stream(self) -> None:
        """Append the job's log to the step's log as it comes (a websocket the dashboard closes once
        the job has ended). Once the job has ended, _watch writes the whole log once instead: it does
        not wait for the stream to close, which the dashboard does only on its next status check."""

        async def follow() -> None:
            async for chunk in self._client.tail_job_logs(self.job_id):
                with self._log_lock:
                    if self._final:
                        return
                    self._write(chunk)

        with contextlib.suppress(Exception):  # a dropped stream: the final log is fetched whole anyway
            asyncio.run(follow())

    def _write(self, chunk: str, logs: Sequence[Path] | None = None) -> None:
        """Append a chunk to the step's log; a gang's complete lines go to their ranks' logs."""
        logs = logs or self.log_paths
        if not self._gang:
            with logs[0].open("a", encoding="utf-8") as log:
                log.write(chunk)
            return
        text = self._pending + chunk
        lines = text.split("\n")
        self._pending = lines.pop()
        by_rank: dict[int, list[str]] = {}
        for line in lines:
            rank, text_line = self._route(line)
            if rank is not None:
                by_rank.setdefault(rank, []).append(text_line)
        for rank, rank_lines in by_rank.items():
            with logs[rank].open("a", encoding="utf-8") as log:
                log.write("".join(f"{x}\n" for x in rank_lines))

    def _write_final(self) -> None:
        """Replace the streamed log with the job's whole log (a superset of what was streamed, so the
        runner's read offsets stay valid); the stream writes nothing after this."""
        try:
            full = self._client.get_job_logs(self.job_id)
        except Exception:  # the cluster is gone: keep what was streamed
            full = None
        with self._log_lock:
            self._final = True
            if full is None:
                if self._gang and self._pending:
                    self._write("\n")
                return
            staged = [path.with_suffix(".ray") for path in self.log_paths]
            for path in staged:
                path.write_bytes(b"")
            self._pending = ""
            self._write(full if full.endswith("\n") or not self._gang else full + "\n", staged)
            for tmp, path in zip(staged, self.log_paths, strict=True):
                os.replace(tmp, path)

    def _route(self, line: str) -> tuple[int | None, str]:
        """Which rank's log a gang's line belongs to (the driver's own lines go to rank 0's)."""
        if line.startswith(MARKER):
            _, rank, outcome = line.split(" ", 2)
            self._outcomes[int(rank)] = outcome
            return None, line
        if line.startswith("[rank "):
            head, _, rest = line.partition("] ")
            with contextlib.suppress(ValueError):
                index = int(head[len("[rank ") :])
                if 0 <= index < len(self.log_paths):
                    return index, rest
        return 0, line

    def _watch(self) -> None:
        info = None
        silent_since: float | None = None
        while True:
            try:
                info = self._client.get_job_info(self.job_id)
                silent_since = None
            except Exception as exc:  # a busy dashboard, or the cluster went away under the job
                silent_since = silent_since or time.monotonic()
                if time.monotonic() - silent_since > LOST_AFTER_S:
                    self._finish([self._lost(exc)] * len(self.log_paths))
                    return
                time.sleep(1.0)
                continue
            if info.status.is_terminal():
                break
            time.sleep(POLL_S)
        self._write_final()
        self._finish([self._build(info, i) for i in range(len(self.log_paths))])

    def _finish(self, results: list[StepResult]) -> None:
        with self._lock:
            self.results = results
            self.done.set()
        if self._timer is not None:
            self._timer.cancel()

    def _duration(self, info: Any) -> float:
        start, end = getattr(info, "start_time", None), getattr(info, "end_time", None)
        if start and end and end >= start:
            return float(end - start) / 1000.0  # Ray keeps milliseconds since the epoch
        return time.monotonic() - self._started

    def _lost(self, exc: BaseException) -> StepResult:
        return StepResult(
            exit_code=-1,
            duration_s=time.monotonic() - self._started,
            peak_memory_bytes=0,
            metrics={},
            log_path=self.log_paths[0],
            failure="crashed",
            error=f"lost the Ray cluster while job {self.job_id} ran: {exc}",
        )

    def _build(self, info: Any, index: int) -> StepResult:
        status = str(getattr(info.status, "value", info.status))
        error_type, message, code = str(info.error_type or ""), info.message, info.driver_exit_code
        outcome = self._outcomes.get(index) if self._gang else None
        if outcome is not None:  # the gang driver said how this rank ended
            kind, _, detail = outcome.partition(" ")
            if kind == "lost":
                error_type, message, code = _NODE_DIED[0], f"rank {index}: {detail}", None
            else:
                code = int(detail)
                status = "SUCCEEDED" if code == 0 else "FAILED"
                if code == -15 and self._cause is None:
                    status, message = "STOPPED", "stopped: another rank failed"
        report = read_report(self._result_paths[index])
        failure, error = classify_job(status, error_type, message, code, report, self._cause)
        if failure is not None and error is None:
            error = exit_words(-1 if code is None else code, self.log_paths[index])
        if failure == "timeout":
            error = f"timed out after {self._timeout_s or 0:g} s"
        metrics: Mapping[str, Any] = report.get("metrics") or {}
        if failure is None:  # where it ran, for the run's report and the ledger of attempts
            where = {"ray_job": self.job_id, "ray_node": info.driver_node_id} if not self._gang else {}
            metrics = {**metrics, **{k: v for k, v in where.items() if v}}
        return StepResult(
            exit_code=0 if failure is None else (code if code is not None else -1),
            duration_s=self._duration(info),
            peak_memory_bytes=int(report.get("peak_memory_bytes") or 0),
            metrics=metrics if failure is None else {},
            preempted=failure == "preempted",
            log_path=self.log_paths[index],
            failure=failure,
            error=None if failure is None else f"{error} (Ray job {self.job_id})",
        )


def classify_job(
    status: str,
    error_type: str,
    message: str | None,
    exit_code: int | None,
    report: Mapping[str, Any],
    cause: FailureKind | None,
) -> tuple[FailureKind | None, str | None]:
    """How a Ray job ended, as the local executor's failure kinds: (None, None) for a success.

    The worker's report (``result.json``) decides a step's own failure exactly as for a local process;
    Ray's ``error_type`` decides what the worker could not say: a supervisor (or rank) that died with
    its node is a preemption, a job that never started is a crash (both infrastructure).
    """
    if cause == "preempted":
        return "preempted", "preempted: the Ray node was reclaimed (spot) while the step ran"
    if cause in ("timeout", "cancelled"):
        return cause, cause
    if status == "STOPPED":
        return "cancelled", message or "stopped on the Ray cluster (ray job stop)"
    if status == "SUCCEEDED" and report.get("ok"):
        return None, None
    if report.get("failure") == "memory":
        return "memory", str(report.get("error") or "ran out of memory")
    if report.get("failure") in ("error", "unreachable"):
        return report["failure"], str(report.get("error") or "")
    if error_type in _NODE_DIED:
        return "preempted", f"the Ray node running the step died: {message or error_type}"
    if error_type in _NOT_STARTED:
        return "crashed", f"the Ray job did not start ({error_type}): {message or ''}".rstrip(": ")
    if status == "SUCCEEDED":
        return "crashed", f"exited with code {exit_code or 0} without a result"
    return "crashed", None
