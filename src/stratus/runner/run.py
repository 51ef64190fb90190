"""Run a pipeline: plan, make or find its datasets, walk the DAG, and report, resumably.

A run is a row in the state database from its first moment; ``resume`` continues that row, skipping
every step already done in it and redoing only the attempts that were cut short.
"""

from __future__ import annotations

import functools
import inspect
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import ParamSpec

from stratus.budget import check_quotas
from stratus.catalog import Catalog
from stratus.config import Pipeline, Platform
from stratus.errors import ConfigError, RunError, StratusError
from stratus.planner import artifact_residency
from stratus.planner.plan import Objective
from stratus.policy import policy_gate
from stratus.runner.billing import Biller
from stratus.runner.cache import code_version, module_file
from stratus.runner.context import Faults, RetryPolicy, RunContext, open_sites
from stratus.runner.dataplane import DataPlane
from stratus.runner.datasets import bind_datasets, make_keys
from stratus.runner.events import EventSink, RunEvent
from stratus.runner.health import plan_with_healthy_sites
from stratus.runner.placement import Placer
from stratus.runner.replicas import RepairLedger, complete_pending, pending_notes
from stratus.runner.report import RunReport, build_report
from stratus.runner.runlock import acquire_run_lock, run_lock_name, runner_alive, runner_identity
from stratus.runner.scheduler import Scheduler
from stratus.runner.sizes import far_off_sizes, measured_size_note
from stratus.state import (
    DONE,
    Database,
    Repository,
    RunStatus,
    last_output_sizes,
)
from stratus.units import format_usd
from stratus.workspace import Workspace

__all__ = ["new_run_id", "run", "run_file"]


def new_run_id() -> str:
    """Sortable by start time, unique without coordination: ``20261126-114500-3fa9c1``."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


P = ParamSpec("P")


def _one_at_a_time(body: Callable[P, RunReport]) -> Callable[P, RunReport]:
    """Hold the pipeline's run lock (:mod:`.runlock`) around ``body``: a second run waits, then reuses.

    A resume of a run that is still being run is refused at once rather than queued behind it.
    """

    @functools.wraps(body)
    def locked(*args: P.args, **kwargs: P.kwargs) -> RunReport:
        given = inspect.signature(body).bind(*args, **kwargs).arguments
        pipeline: Pipeline = given["pipeline"]
        db: Database = given["db"]
        on_event: EventSink | None = given.get("on_event")
        if given.get("resume") is not None:
            _check_resumable(Repository(db), pipeline, given["resume"])

        def note(message: str) -> None:
            if on_event is not None:
                on_event(RunEvent("note", message))

        lock = acquire_run_lock(db, run_lock_name(pipeline, given["platform"]), pipeline.name, note)
        try:
            report = body(*args, **kwargs)
        finally:
            lock.release()
        return replace(report, notes=(*lock.notes, *report.notes), waited_for=lock.waited_for)

    return locked


@_one_at_a_time
def run(
    pipeline: Pipeline,
    platform: Platform,
    *,
    db: Database,
    pipeline_dir: Path,
    platform_dir: Path,
    runs_dir: Path,
    catalog: Catalog | None = None,
    resume: str | None = None,
    objective: Objective = "cost",
    on_event: EventSink | None = None,
    faults: Faults | None = None,
    retry: RetryPolicy | None = None,
    files: Mapping[str, str] | None = None,
    repair: bool = True,
) -> RunReport:
    """Execute ``pipeline`` on ``platform`` and return its report (also when it failed).

    One run of a pipeline on a platform at a time: while another holds the run lock, this one waits,
    says so, and then reuses whatever that run produced. With ``repair`` (the default) the run first
    writes replicas that earlier quorum writes left pending, at every site that answers again (billed to
    this run), and says what it did in the run's notes.

    Raises ConfigError (a step's module is missing), PlanError (nothing feasible) or RunError (unknown
    ``resume`` id, another pipeline's run, a run still being run) before anything executes.
    """
    repo = Repository(db)
    gate = policy_gate(platform, platform_dir)
    with closing(gate):  # stops the policy engine's worker, if one was started
        catalog = catalog or Catalog.bundled()
        measured = last_output_sizes(db, pipeline.name)  # before this run names anything
        placer = Placer(pipeline, platform, catalog, objective, gate.plan_policy(pipeline), measured)
        versions = {
            name: code_version(
                step.run, module_file(step.run, [pipeline_dir], field=f"steps.{name}.run"), step.params
            )
            for name, step in pipeline.steps.items()
        }
        sites = open_sites(platform, platform_dir)
        run_id, interrupted = _open_run(repo, pipeline, resume, objective, files or {})
        with _failed_on_crash(repo, run_id):  # any exception, ours or a bug, must not leave it running
            biller = Biller(db, run_id, platform, pipeline.tags, catalog.storage)
            ctx = RunContext(
                run_id=run_id,
                pipeline=pipeline,
                pipeline_dir=pipeline_dir,
                platform=platform,
                repo=repo,
                sites=sites,
                placer=placer,
                biller=biller,
                data=DataPlane(run_id, repo, sites.stores, placer, biller, gate),
                runs_dir=runs_dir,
                residency=artifact_residency(pipeline),
                sink=on_event,
                faults=faults or Faults(),
                retry=retry or RetryPolicy(),
                policy=gate,
            )
            ctx.data.on_note = lambda message: ctx.emit(RunEvent("note", message))
            if repair:
                ledger = RepairLedger(platform, placer.egress_usd_per_gb, run_id, pipeline.tags)
                for note in pending_notes(*complete_pending(repo, sites.stores, ledger=ledger, policy=gate)):
                    ctx.emit(RunEvent("note", note))
            done = {
                a.step: a.site for a in repo.attempts(run_id) if a.status in DONE and a.step in pipeline.steps
            }
            plan = plan_with_healthy_sites(
                ctx, done
            )  # probes the sites it needs; re-plans around silent ones
            check_quotas(plan, pipeline, platform)  # a step its team's quota could never admit
            for size in plan.sizes:
                if size.used == "measured":
                    ctx.emit(RunEvent("note", measured_size_note(size)))
            if resume is None:
                accelerated = {name for name, step in pipeline.steps.items() if step.resources.accelerators}
                biller.plan(plan, accelerated)
                ctx.emit(
                    RunEvent(
                        "run",
                        f"run {run_id}: {len(pipeline.steps)} steps, "
                        f"planned {format_usd(plan.total_cost_usd)}",
                    )
                )
            else:
                ctx.emit(
                    RunEvent(
                        "note",
                        f"resuming run {run_id}: {len(done)} of {len(pipeline.steps)} steps already done; "
                        f"{interrupted} interrupted attempt(s) will be redone",
                    )
                )
            error: str | None = None
            try:
                bind_datasets(ctx, make_keys(ctx))
                error = Scheduler(ctx, plan, versions).run()
            except RunError as exc:
                error = str(exc)
            except StratusError as exc:  # a store or executor failing outside any step (datasets)
                error = f"{type(exc).__name__}: {exc}"
            status: RunStatus = "succeeded" if error is None else "failed"
            cancelled = repo.cancel_requested(run_id)
            if error is not None and cancelled is not None:  # a run that finished first stays succeeded
                status, error = "cancelled", cancelled
            for w in ctx.data.written:  # the replicas the run leaves: a month of each on the books
                biller.storage(
                    site=w.site, artifact=w.artifact, size_bytes=w.size_bytes, start=w.at, step=w.step
                )
            repo.finish_run(run_id, status, error)
            ctx.emit(RunEvent("run", f"run {run_id} {status}" + (f": {error}" if error else "")))
            return build_report(
                repo,
                run_id,
                list(pipeline.steps),
                ctx.notes,
                error,
                incidents=ctx.incidents,
                size_estimates=far_off_sizes(pipeline, db, run_id),
            )


@contextmanager
def _failed_on_crash(repo: Repository, run_id: str) -> Iterator[None]:
    """Mark the run failed, with the reason, when anything escapes: Ctrl-C, a store, or a bug of ours.

    Without this a crash before the last line left the row ``running`` forever (``.inf`` sizes overflowed
    in billing before the scheduler started), and `stratus run --resume` could not tell it had died.
    """
    try:
        yield
    except BaseException as exc:
        row = repo.run(run_id)
        if row is not None and row.status == "running":
            what = "crashed"  # a bug of ours or a library's: say so, with what it said
            if isinstance(exc, StratusError):
                what = "failed"
            elif isinstance(exc, (KeyboardInterrupt, SystemExit)):
                what = "stopped"
            detail = f": {exc}" if isinstance(exc, Exception) and str(exc) else ""
            reason = f"{what}: {type(exc).__name__}{detail}; resume with --resume {run_id}"
            repo.finish_run(run_id, "failed", reason)
        raise


def _open_run(
    repo: Repository, pipeline: Pipeline, resume: str | None, objective: str, files: Mapping[str, str]
) -> tuple[str, int]:
    me = runner_identity()
    if resume is None:
        run_id = new_run_id()
        repo.create_run(
            run_id,
            pipeline=pipeline.name,
            pipeline_file=files.get("pipeline", ""),
            platform_file=files.get("platform", ""),
            objective=objective,
            runner=me,
        )
        return run_id, 0
    _check_resumable(repo, pipeline, resume)
    return resume, repo.reopen_run(resume, me)


def _check_resumable(repo: Repository, pipeline: Pipeline, resume: str) -> None:
    row = repo.run(resume)
    if row is None:
        recent = ", ".join(r.id for r in repo.runs()[:5]) or "none yet"
        raise RunError(f"no run {resume!r} in the state database; recent runs: {recent}")
    if row.pipeline != pipeline.name:
        raise RunError(
            f"run {resume!r} ran pipeline {row.pipeline!r}, not {pipeline.name!r}; pass that pipeline's file"
        )
    if row.status == "running" and runner_alive(row.runner):
        raise RunError(
            f"run {resume!r} is still being run by process {row.runner}; "
            "wait for it to finish, or stop it first, then resume"
        )


def run_file(
    pipeline_file: Path | str,
    workspace: Workspace | Path | str | None = None,
    *,
    state_url_override: str | None = None,
    resume: str | None = None,
    objective: Objective = "cost",
    on_event: EventSink | None = None,
    faults: Faults | None = None,
    retry: RetryPolicy | None = None,
    repair: bool = True,
) -> RunReport:
    """Run a pipeline file in ``workspace``: by default the one of ``stratus.yaml`` beside the pipeline
    (``$STRATUS_PLATFORM`` first), with state in its ``.stratus/``. A path names the platform file.

    Step modules are imported from the pipeline's folder; relative ``file://`` storage roots and the
    state folder are beside the platform file, exactly as ``stratus run`` resolves them. A Workspace
    that already parsed the files (``stratus run`` checks budgets first) is not made to parse them again.
    """
    pipeline_path = Path(pipeline_file)
    if not pipeline_path.is_file():
        raise ConfigError("pipeline file not found; check the path", file=str(pipeline_path))
    if isinstance(workspace, Workspace):
        if state_url_override is not None:
            raise ValueError("a Workspace carries its own state URL: build it with state_url=...")
    else:
        found = Path(workspace) if workspace else None
        workspace = Workspace.find(found, pipeline_path, state_url=state_url_override)
    platform = workspace.platform
    pipeline = workspace.pipeline(pipeline_path)
    return run(
        pipeline,
        platform,
        db=workspace.database,
        pipeline_dir=pipeline_path.resolve().parent,
        platform_dir=workspace.base_dir,
        runs_dir=workspace.runs_dir,
        catalog=workspace.catalog,
        resume=resume,
        objective=objective,
        on_event=on_event,
        faults=faults,
        retry=retry,
        repair=repair,
        files={"pipeline": str(pipeline_path.resolve()), "platform": str(workspace.platform_file.resolve())},
    )
