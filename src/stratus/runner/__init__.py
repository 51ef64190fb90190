"""The runner walks a Plan: schedules steps, caches, retries, fails over, resumes after ``kill -9``.

    report = run_file("pipeline.yaml")             # platform and state found beside the files
    print(report.status, report.cost_usd)

``run`` is the same with loaded models and explicit folders; events stream to ``on_event``.
"""

from stratus.runner.cache import cache_key, code_version, module_file
from stratus.runner.context import Faults, RetryPolicy
from stratus.runner.events import EventKind, EventSink, RunEvent, StepState, metrics_words
from stratus.runner.report import ArtifactReport, RunReport, StepReport
from stratus.runner.run import new_run_id, run, run_file

__all__ = [
    "ArtifactReport",
    "EventKind",
    "EventSink",
    "Faults",
    "RetryPolicy",
    "RunEvent",
    "RunReport",
    "StepReport",
    "StepState",
    "cache_key",
    "code_version",
    "metrics_words",
    "module_file",
    "new_run_id",
    "run",
    "run_file",
]
