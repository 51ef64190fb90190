"""``kubernetes``: each step is a Job in the site's context, watched until it ends, then deleted.

The Job runs the same worker as ``local`` (``python -m stratus.executors.worker``), with the request in
its environment and the run's work folder mounted from the site's ReadWriteMany claim
(``compute.work_claim``) at the same path as on the runner, so the step reads its inputs and writes its
outputs and ``result.json`` exactly where the runner expects them. ``backoffLimit`` is 0 here: the
runner counts attempts and decides on failover, so the cluster must not retry behind its back.

How a Job ended is read from the cluster and mapped to the runner's failure kinds
(:mod:`stratus.failures`):

=====================================================  ================================
what the cluster says                                  failure (class)
=====================================================  ================================
Job ``Complete``                                       none
pod condition ``DisruptionTarget`` (preemption, spot   ``preempted`` (infrastructure)
reclaim, drain), or the pod ``Evicted``
pod gone with its node (no container status), or a     ``crashed`` (infrastructure)
container killed by a signal, or an unknown code
Job ``DeadlineExceeded``, or our watch's own deadline  ``timeout`` (infrastructure)
container ``OOMKilled``, or the worker's exit 3        ``memory`` (user)
the worker's exit 1 or 2                               ``error`` (user) or ``unreachable``
                                                       (infrastructure), as its report says
=====================================================  ================================
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2
from lightkube import ApiError, Client
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod
from lightkube.types import CascadeType

from stratus.config import Site
from stratus.errors import ExecutorError
from stratus.executors.base import FailureKind, Handle, StepRequest, StepResult, SupportsPreemption
from stratus.executors.process import LOG_FILE, RESULT_FILE, follow_log, read_report, worker_payload
from stratus.kubernetes.client import apply_objects, connect
from stratus.kubernetes.errors import ClusterError
from stratus.kubernetes.render import STEP_CONTAINER, USER_EXIT_CODES, Workload, render_job, worker_command
from stratus.kubernetes.target import Target
from stratus.kubernetes.validate import as_dict

__all__ = ["WATCH_TIMEOUT_S", "KubernetesExecutor", "KubernetesHandle"]

log = logging.getLogger(__name__)

WATCH_TIMEOUT_S = 30.0  # each watch request ends (server side) or is abandoned (client side) by then
DEADLINE_GRACE_S = 120.0  # past the step's own timeout, the cluster's deadline should have fired
_POD_POLL_S = 1.0
LOG_DRAIN_S = 10.0  # after the Job ends, how long its log stream may take to deliver the rest
_DISRUPTED_REASONS = frozenset({"Evicted", "Preempting", "Shutdown", "NodeShutdown", "Terminated"})


class KubernetesExecutor(SupportsPreemption):
    """Runs each step as a Job in the site's context (see the module's table for how it ends)."""

    name = "kubernetes"

    def __init__(self, site: str, target: Target) -> None:
        self.site = site
        self.target = target

    @classmethod
    def for_site(cls, name: str, site: Site) -> KubernetesExecutor:
        """The executor of a ``backend: kubernetes`` site (its context is connected on first submit)."""
        return cls(name, Target.from_site(name, site))

    def _work_path(self, request: StepRequest) -> str | None:
        paths = [request.workdir, *request.inputs.values(), *request.outputs.values()]
        if self.target.work_claim is None:
            if request.inputs or request.outputs:
                raise ExecutorError(
                    f"reads or writes files, but the site has no work volume: set "
                    f"sites.{self.site}.compute.work_claim to a ReadWriteMany PersistentVolumeClaim "
                    "that is also mounted at the runner's work folder",
                    step=request.step,
                    site=self.site,
                )
            return None
        return os.path.commonpath([str(p.resolve()) for p in paths])

    def submit(self, request: StepRequest) -> KubernetesHandle:
        """Apply the step's Job (validated first) and start watching it; returns at once."""
        work_path = self._work_path(request)
        command, env = worker_command(worker_payload(request))
        work = Workload(
            run_id=request.run_id,
            step=request.step,
            command=command,
            env={**request.env, **env},
            resources=request.resources,
            spot=False,
            max_attempts=1,
            cluster_retries=False,  # any pod failure fails the Job: the runner retries or fails over
            timeout_s=request.timeout_s,
            work_path=work_path,
        )
        job = as_dict(render_job(work, self.target))
        job["metadata"]["name"] = f"{job['metadata']['name'][:56]}-{uuid.uuid4().hex[:6]}"  # one per try
        request.workdir.mkdir(parents=True, exist_ok=True)
        (request.workdir / RESULT_FILE).unlink(missing_ok=True)
        try:
            client = connect(self.target, watch_read_timeout_s=WATCH_TIMEOUT_S + 5)
            apply_objects(client, self.target, [job])
            logs = connect(self.target)  # a followed log may stay quiet as long as the step likes
        except ClusterError as exc:
            raise ExecutorError(str(exc), step=request.step, site=self.site) from None
        return KubernetesHandle(client, logs, self.target, job["metadata"]["name"], request)


class KubernetesHandle(Handle):
    """A submitted Job: a watcher thread maps its end to a StepResult; a log thread follows its pod."""

    def __init__(self, client: Client, logs: Client, target: Target, job: str, request: StepRequest) -> None:
        self.client = client
        self._log_client = logs
        self.target = target
        self.job = job
        self.step = request.step
        self.log_path = request.workdir / LOG_FILE
        self.log_path.write_text("", encoding="utf-8")
        self._result_path = request.workdir / RESULT_FILE
        self._deadline = (
            None if request.timeout_s is None else time.monotonic() + request.timeout_s + DEADLINE_GRACE_S
        )
        self._timeout_s = request.timeout_s
        self._cause: FailureKind | None = None
        self._result: StepResult | None = None
        self._done = threading.Event()
        self._finishing = threading.Event()  # the Job has ended: stop looking for a pod to follow
        self._streamed = False
        self._started = time.monotonic()
        self._log_thread = threading.Thread(target=self._follow_logs, name=f"k8s-logs-{job}", daemon=True)
        self._log_thread.start()
        threading.Thread(target=self._watch, name=f"k8s-watch-{job}", daemon=True).start()

    # -- the Handle interface -------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> StepResult | None:
        """The result once the Job has ended and been deleted; None when ``timeout`` passes first."""
        self._done.wait(timeout)
        return self._result

    def logs(self) -> Iterator[str]:
        """The pod's log lines as they arrive, until the step has ended."""
        return follow_log(self.log_path, self._done)

    def cancel(self) -> None:
        """Delete the Job (and its pods); the result reports ``cancelled``."""
        self._cause = self._cause or "cancelled"
        self._delete_job()

    def preempt(self) -> None:
        """Delete the step's pods without warning, as a reclaimed spot node takes them, then the Job.

        With ``backoffLimit: 0`` the lost pod fails the Job anyway; deleting it at once also wakes the
        watcher, which reports ``preempted`` so that the runner fails over.
        """
        self._cause = self._cause or "preempted"
        for pod in self._pods():
            with contextlib.suppress(ApiError, httpx2.HTTPError):
                self.client.delete(Pod, pod.metadata.name, namespace=self.target.namespace, grace_period=0)
        self._delete_job()

    # -- watching -------------------------------------------------------------------------------

    def _watch(self) -> None:
        try:
            result = self._until_finished()
        except Exception as exc:  # the watcher must always produce a result, whatever went wrong
            log.warning("watching Job %s failed: %s", self.job, exc)
            result = self._result_of("crashed", f"lost track of Job {self.job}: {exc}", None)
        self._finishing.set()
        self._log_thread.join(timeout=LOG_DRAIN_S)
        if not self._streamed:  # ended before its pod could be followed: read the log once
            self._copy_log(follow=False)
        self._delete_job()
        self._result = result
        self._done.set()

    def _until_finished(self) -> StepResult:
        while True:
            if self._cause in ("cancelled", "preempted"):
                return self._result_of(self._cause, _WORDS[self._cause], None)
            job = self._get_job()
            if job is None:
                return self._result_of("crashed", f"Job {self.job} disappeared before it finished", None)
            finished = self._finished(job)
            if finished is not None:
                return finished
            if self._deadline is not None and time.monotonic() > self._deadline:
                limit = self._timeout_s or 0.0
                return self._result_of(
                    "timeout", f"timed out after {limit:g} s (the cluster did not stop it)", None
                )
            self._wait_for_change(job)

    def _wait_for_change(self, job: Any) -> None:
        """Block on a watch of the Job until its status changes, it goes, or the watch times out.

        A watch first replays the current state (the API server does so without a resourceVersion, and
        emulators do so always): events that show the status already seen are skipped, not acted on.
        """
        if self._cause is not None:
            return  # cancelled or preempted while we read the Job: act on it now
        fields: dict[str, Any] = {"metadata.name": self.job}
        seen = job.status.to_dict() if job.status else None
        version = job.metadata.resourceVersion if job.metadata else None
        try:
            for kind, obj in self.client.watch(
                Job,
                namespace=self.target.namespace,
                fields=fields,
                server_timeout=int(WATCH_TIMEOUT_S),
                resource_version=version,
            ):
                if obj.metadata is None or obj.metadata.name != self.job:
                    continue  # a server that ignores the field selector sends its neighbours too
                status = obj.status.to_dict() if obj.status else None
                if kind == "DELETED" or status != seen or self._cause is not None:
                    return
        except httpx2.TimeoutException:
            return  # no news within the watch's read timeout: look again
        except (ApiError, httpx2.HTTPError) as exc:
            log.info("watch of Job %s interrupted (%s); polling", self.job, exc)
            time.sleep(_POD_POLL_S)

    def _get_job(self) -> Any:
        try:
            return self.client.get(Job, self.job, namespace=self.target.namespace)
        except ApiError as exc:
            if exc.response.status_code == 404:
                return None
            raise

    def _pods(self) -> list[Any]:
        # Selected on the server and checked here again: an emulator or proxy may ignore the selector.
        try:
            pods = self.client.list(Pod, namespace=self.target.namespace, labels={"job-name": self.job})
            return [p for p in pods if p.metadata and (p.metadata.labels or {}).get("job-name") == self.job]
        except (ApiError, httpx2.HTTPError):
            return []

    def _finished(self, job: Any) -> StepResult | None:
        conditions = {c.type: c for c in (job.status.conditions or [])} if job.status else {}
        done = conditions.get("Complete") or conditions.get("SuccessCriteriaMet")
        if done is not None and done.status == "True":
            return self._result_of(None, None, 0)
        failed = conditions.get("Failed") or conditions.get("FailureTarget")
        if failed is None or failed.status != "True":
            return None
        if failed.reason == "DeadlineExceeded":
            limit = self._timeout_s or 0.0
            return self._result_of(
                "timeout", f"timed out after {limit:g} s (the Job's activeDeadlineSeconds)", None
            )
        return self._pod_failure(self._pods())

    def _pod_failure(self, pods: list[Any]) -> StepResult:
        """Why the Job's pod failed, in the runner's terms."""
        for pod in pods:
            status = pod.status
            if status is None:
                continue
            conditions = {c.type: c for c in (status.conditions or [])}
            disruption = conditions.get("DisruptionTarget")
            if (
                disruption is not None and disruption.status == "True"
            ) or status.reason in _DISRUPTED_REASONS:
                why = (disruption.reason if disruption is not None else None) or status.reason or "disrupted"
                return self._result_of("preempted", f"preempted: the pod was disrupted ({why})", None)
            for container in status.containerStatuses or []:
                ended = container.state.terminated if container.state else None
                if container.name != STEP_CONTAINER or ended is None:
                    continue
                return self._exit(ended.exitCode, ended.reason)
        return self._result_of(
            "crashed", "the pod was lost with its node before it reported an exit code", None
        )

    def _exit(self, code: int, reason: str | None) -> StepResult:
        report = read_report(self._result_path)
        if reason == "OOMKilled" or code == 3:
            limit = " (raise the step's resources.memory_gb: it is the pod's memory limit)"
            return self._result_of("memory", f"{report.get('error') or 'ran out of memory'}{limit}", code)
        if code in USER_EXIT_CODES and report.get("failure") in ("error", "unreachable"):
            return self._result_of(report["failure"], str(report.get("error") or ""), code)
        if code in USER_EXIT_CODES:
            return self._result_of("error", f"exited with code {code}", code)
        what = f"killed by signal {code - 128}" if code > 128 else f"exited with code {code}"
        return self._result_of("crashed", f"{what} ({reason or 'no reason given'})", code)

    def _result_of(self, failure: FailureKind | None, error: str | None, code: int | None) -> StepResult:
        report = read_report(self._result_path) if failure is None else {}
        if failure is None and not report.get("ok", False):
            failure, error = (
                "crashed",
                "the Job completed but the worker wrote no result (is the work volume shared?)",
            )
        return StepResult(
            exit_code=0 if code is None and failure is None else (code if code is not None else -9),
            duration_s=time.monotonic() - self._started,
            peak_memory_bytes=int(report.get("peak_memory_bytes") or 0),
            metrics=(report.get("metrics") or {}) if failure is None else {},
            preempted=failure == "preempted",
            log_path=self.log_path,
            failure=failure,
            error=None if failure is None else f"{error} [Job {self.job}, context {self.target.context}]",
        )

    # -- logs and clean-up ----------------------------------------------------------------------

    def _follow_logs(self) -> None:
        """Follow the pod's log into the step's log file while the pod runs."""
        while not self._finishing.is_set():
            if self._copy_log(follow=True):
                return
            self._finishing.wait(_POD_POLL_S)

    def _copy_log(self, *, follow: bool) -> bool:
        """Append the step container's log to the step's log file; False when no pod has started yet."""
        started = ("Running", "Succeeded", "Failed")
        pods = [p for p in self._pods() if p.status and p.status.phase in started]
        if not pods:
            return False
        name = pods[0].metadata.name
        try:
            with self.log_path.open("a", encoding="utf-8") as sink:
                self._streamed = True
                for line in self._log_client.log(
                    name, namespace=self.target.namespace, container=STEP_CONTAINER, follow=follow
                ):
                    sink.write(line if line.endswith("\n") else line + "\n")
                    sink.flush()
        except (ApiError, httpx2.HTTPError) as exc:
            log.info("log of pod %s ended: %s", name, exc)
        return True

    def _delete_job(self) -> None:
        with contextlib.suppress(ApiError, httpx2.HTTPError):
            self.client.delete(Job, self.job, namespace=self.target.namespace, cascade=CascadeType.BACKGROUND)


_WORDS: dict[str, str] = {
    "cancelled": "cancelled",
    "preempted": "preempted: the pod was taken away (spot reclaim) while the step ran",
}
