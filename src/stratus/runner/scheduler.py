"""Walks the DAG: starts ready steps up to each site's capacity, reuses cached results, retries, fails over.

One thread per running attempt; this loop alone decides what happens next, so placement, retry counts
and the run's error are never shared between threads. A step that fails for an infrastructure reason
retries where it is, with backoff, up to its ``max_attempts``; one that fails in its own code (see
:mod:`stratus.failures`) fails the run at once unless it sets ``retry_on_error``. A preempted step moves
to the next-best feasible site; a failed site is marked down for the whole run and the plan is re-solved
for every step not yet started.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from stratus.budget import Demand, QuotaUsage, placement_sites, team_quotas
from stratus.config import step_dependencies, topological_order
from stratus.errors import InfeasibleError, ResidencyError, StorageError
from stratus.planner import Placement, Plan
from stratus.runner.attempt import Outcome, execute_step
from stratus.runner.cache import cache_key
from stratus.runner.context import RunContext
from stratus.runner.events import RunEvent
from stratus.runner.health import announce_replan, mark_down
from stratus.runner.incidents import Moved, StepFailure
from stratus.state import DONE

__all__ = ["Scheduler"]

_TICK_S = 0.25
#: How often the loop asks the state database whether someone asked to cancel the run (``stratus runs
#: cancel`` writes the request there, perhaps from another host).
CANCEL_POLL_S = 1.0


class Scheduler:
    """Runs every step of a plan not yet done in this run; :meth:`run` returns the run's error or None."""

    def __init__(self, ctx: RunContext, plan: Plan, versions: Mapping[str, str]) -> None:
        self.ctx = ctx
        self.versions = versions
        steps = ctx.pipeline.steps
        self.deps = step_dependencies({name: step.inputs for name, step in steps.items()})
        self.order = topological_order(self.deps)
        self.placements: dict[str, Placement] = {p.step: p for p in plan.placements}
        self.done: dict[str, str] = {}  # step → the site that holds its outputs
        self.attempts: Counter[str] = Counter()
        for row in ctx.repo.attempts(ctx.run_id):
            if row.step not in steps:
                continue
            if row.status in DONE:
                self.done[row.step] = row.site
            if row.status != "cached":
                self.attempts[row.step] = max(self.attempts[row.step], row.attempt)
        self.failures: Counter[str] = Counter()  # this session's: a resumed run gets fresh retries
        self.injected: Counter[str] = Counter()
        self.next_at: dict[str, float] = {}
        self.running: dict[Future[Outcome], str] = {}
        self.busy: Counter[str] = Counter()
        self.quota = QuotaUsage(ctx.pipeline.tags.get("team"), team_quotas(ctx.platform, ctx.pipeline))
        self.error: str | None = None
        self.cancelled: str | None = None  # why, once a cancel request was seen
        self._cancel_checked = 0.0

    def run(self) -> str | None:
        """Until every step is done, or one has failed for good and the running ones have finished."""
        workers = max(1, min(len(self.order), sum(self.ctx.sites.slots.values())))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="step") as pool:
            try:
                self._loop(pool)
            except BaseException:
                self.ctx.stop.set()  # Ctrl-C or a bug: stop the steps, then let the caller see it
                wait(self.running)
                raise
        return self.error

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        while True:
            self._check_cancel()
            if self.error is None and not self.ctx.stop.is_set():
                self._launch_ready(pool)
            if not self.running:
                pending = [s for s in self.order if s not in self.done]
                if self.error is not None or not pending:
                    return
                if not self.next_at:
                    self.error = f"steps {', '.join(pending)} cannot start: their inputs were never produced"
                    return
                time.sleep(min(_TICK_S, max(0.0, min(self.next_at.values()) - time.monotonic())))
                continue
            finished, _ = wait(list(self.running), timeout=_TICK_S, return_when=FIRST_COMPLETED)
            for future in finished:
                name = self.running.pop(future)
                self.busy[self.placements[name].site] -= 1
                self.quota.release(name)
                try:
                    outcome = future.result()
                except Exception as exc:  # a bug in the runner: fail the step, keep the run's state sane
                    where = self.placements[name].site
                    outcome = Outcome(
                        name, where, self.attempts[name], "failed", repr(exc), error_class="infrastructure"
                    )
                self._settle(outcome)

    def _check_cancel(self) -> None:
        """Stop launching and stop the running steps (their executors' cancel) once a cancel is asked."""
        now = time.monotonic()
        if self.cancelled is not None or now - self._cancel_checked < CANCEL_POLL_S:
            return
        self._cancel_checked = now
        reason = self.ctx.repo.cancel_requested(self.ctx.run_id)
        if reason is None:
            return
        self.cancelled = reason
        self.error = self.error or reason
        self.ctx.stop.set()  # run_group cancels every running member; nothing new starts
        running = ", ".join(sorted(self.running.values())) or "none"
        self.ctx.emit(RunEvent("note", f"{reason}: stopping the running steps ({running})"))

    def _launch_ready(self, pool: ThreadPoolExecutor) -> None:
        now = time.monotonic()
        started = set(self.running.values())
        for name in self.order:
            if name in self.done or name in started or self.next_at.get(name, 0.0) > now:
                continue
            if any(dep not in self.done for dep in self.deps[name]):
                continue
            step = self.ctx.pipeline.steps[name]
            inputs = {ref: self.ctx.repo.resolve(self.ctx.run_id, ref) or "" for ref in step.inputs}
            key = cache_key(self.versions[name], inputs, step.outputs)
            if self._reuse(name, key):
                continue
            placement = self.placements[name]
            if self.busy[placement.site] >= self.ctx.sites.slots[placement.site]:
                continue
            sites, demand = placement_sites(placement), Demand.of(step)
            too_big = self.quota.too_big(name, sites, demand)
            if too_big is not None:  # moved by a re-plan to a site whose quota it alone exceeds
                self.error = self.error or too_big
                return
            if not self.quota.fits(sites, demand):
                continue  # the team's quota at a site is in use: wait for a running step to end
            self.next_at.pop(name, None)
            self.attempts[name] += 1
            preempt = self.injected[name] < self.ctx.faults.preempt.get(name, 0)
            self.injected[name] += int(preempt)
            future = pool.submit(
                execute_step, self.ctx, name, placement, self.attempts[name], key, inputs, preempt=preempt
            )
            self.running[future] = name
            self.busy[placement.site] += 1
            self.quota.take(name, sites, demand)

    def _reuse(self, name: str, key: str) -> bool:
        """Bind an earlier run's outputs when code, params and inputs match and the bytes still exist."""
        ctx = self.ctx
        step = ctx.pipeline.steps[name]
        for source in ctx.repo.cached(key):
            outputs = source.outputs
            if set(outputs) != set(step.outputs) or not all(self._held(sha) for sha in outputs.values()):
                continue
            try:
                for out, sha in outputs.items():
                    ctx.data.ensure_replicas(
                        sha,
                        step.replicate.sites,
                        min_replicas=step.replicate.min,
                        artifact=f"{name}.{out}",
                        step=name,
                        residency=ctx.residency.get(f"{name}.{out}", frozenset()),
                    )
            except (StorageError, ResidencyError):
                continue  # cannot honour `replicate` from the cached copy: run the step instead
            ctx.repo.record_cached(
                ctx.run_id, name, source=source, refs={f"{name}.{o}": s for o, s in outputs.items()}
            )
            self.done[name] = source.site
            origin = source.cached_from or source.run_id
            ctx.emit(
                RunEvent(
                    "step",
                    f"reused from run {origin} (same code, params and inputs)",
                    step=name,
                    state="cached",
                    site=source.site,
                )
            )
            return True
        return False

    def _held(self, sha: str) -> bool:
        for site, status in self.ctx.repo.replicas(sha).items():
            store = self.ctx.sites.stores.get(site)
            if status == "verified" and store is not None:
                try:
                    if store.has(sha):
                        return True
                except StorageError:
                    continue
        return False

    def _settle(self, outcome: Outcome) -> None:
        name, site = outcome.step, outcome.site
        if outcome.kind == "succeeded":
            self.done[name] = site
            self.ctx.incidents.succeeded(name)
            return
        if outcome.kind == "cancelled":
            self.error = self.error or f"step {name!r} was cancelled"
            self.ctx.emit(RunEvent("step", "cancelled", step=name, state="cancelled", site=site))
            return
        if outcome.kind == "refused":  # residency: deterministic, a retry would be refused again
            self._record(outcome, retried=False)
            self.error = f"step {name!r} was refused (not retried): {outcome.error}"
            self.ctx.emit(RunEvent("step", outcome.error or "", step=name, state="failed", site=site))
            return
        if outcome.kind in ("preempted", "site-down"):
            self._record(outcome, retried=True)
            self._fail_over(outcome)
            return
        step = self.ctx.pipeline.steps[name]
        own_code = outcome.error_class == "user"
        self.failures[name] += 1
        limit = step.max_attempts if not own_code or step.retry_on_error else 1
        if self.failures[name] >= limit:
            self._record(outcome, retried=False)
            if limit == 1 and own_code:
                self.error = (
                    f"step {name!r} failed in its own code, so it was not retried "
                    f"(set retry_on_error: true to retry it): {outcome.error}"
                )
            else:
                self.error = f"step {name!r} failed after {self.failures[name]} attempt(s): {outcome.error}"
            self.ctx.emit(RunEvent("step", outcome.error or "", step=name, state="failed", site=site))
            return
        self._record(outcome, retried=True)
        delay = self.ctx.retry.delay(self.failures[name])
        self.next_at[name] = time.monotonic() + delay
        self.ctx.emit(RunEvent("step", f"retry in {delay:.1f} s", step=name, state="retrying", site=site))
        whose = "an error in the step's code" if own_code else "an infrastructure failure"
        self.ctx.emit(
            RunEvent(
                "note",
                f"{name}: attempt {outcome.attempt} failed at {site} ({outcome.error}); {whose}, "
                f"retrying in {delay:.1f} s ({self.failures[name]} of {limit} attempts used)",
                step=name,
                site=site,
            )
        )

    def _record(self, outcome: Outcome, *, retried: bool) -> None:
        failure = StepFailure(
            outcome.error_class or "infrastructure", outcome.error or "", outcome.log_path, retried
        )
        self.ctx.incidents.failed(outcome.step, failure)

    def _fail_over(self, outcome: Outcome) -> None:
        """Move the step off its site (for good when the site failed) and re-plan what has not started."""
        name, site = outcome.step, outcome.site
        why = "preempted (spot capacity reclaimed)" if outcome.kind == "preempted" else "site failure"
        self.ctx.emit(RunEvent("step", outcome.error or why, step=name, state="preempted", site=site))
        if outcome.kind == "site-down":
            mark_down(self.ctx, site, outcome.error or why)  # every later step avoids it, not just this one
        else:
            self.ctx.placer.exclude(name, site, f"{why} during this run")
        try:
            plan = self.ctx.placer.plan(pinned=self.done)
        except InfeasibleError as exc:
            self.error = f"step {name!r}: {why} at {site}, and no other site can run it: {exc}"
            self.ctx.emit(RunEvent("note", self.error, step=name, site=site))
            return
        started = set(self.running.values())
        moved: list[Moved] = []
        for placement in plan.placements:
            if placement.step in self.done or placement.step in started:
                continue
            before = self.placements.get(placement.step)
            if before is None or before.site != placement.site or placement.step == name:
                moved.append(Moved(placement.step, before.site if before else None, placement.site))
            self.placements[placement.step] = placement
        if outcome.kind == "site-down":
            announce_replan(self.ctx, {site: outcome.error or why}, moved)
            return
        target = self.placements[name]
        also = [f"{m.step} {m.from_site} → {m.to_site}" for m in moved if m.step != name]
        detail = f"; also moved {', '.join(also)}" if also else ""
        remaining = len([s for s in self.order if s not in self.done and s not in started])
        self.ctx.incidents.replanned(f"{name} {why} at {site}", moved)
        self.ctx.emit(
            RunEvent(
                "note",
                f"{name}: {why} at {site}; moving to {target.site} ({target.offering}, "
                f"{target.pricing}), the next-best placement; "
                f"re-planned {remaining} remaining step(s){detail}",
                step=name,
                site=target.site,
            )
        )
