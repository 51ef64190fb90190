"""One attempt of one step: stage inputs at its site, run it, publish and replicate its outputs, register.

The attempt's record (running, then succeeded or failed) and the mapping of what went wrong to how the
run reacts are :mod:`stratus.runner.lifecycle`'s, shared with making a dataset; this module is what a
pipeline step does in between. Its outputs are verified on every replica before the lifecycle marks the
attempt succeeded, so a run killed anywhere in between simply retries the attempt.
"""

from __future__ import annotations

from collections.abc import Mapping

from stratus.executors import StepResult
from stratus.planner import Placement
from stratus.planner.residency import step_residency
from stratus.runner.context import RunContext
from stratus.runner.events import metrics_words
from stratus.runner.execution import run_request
from stratus.runner.lifecycle import Attempt, Outcome, OutcomeKind, Published, run_attempt
from stratus.runner.multisite import participant_sites, run_multi_site
from stratus.runner.registration import register_output
from stratus.runner.residency import resident_inputs
from stratus.runner.staging import stage_inputs, step_request

__all__ = ["Outcome", "OutcomeKind", "execute_step"]


def execute_step(
    ctx: RunContext,
    name: str,
    placement: Placement,
    attempt: int,
    cache_key: str,
    inputs: Mapping[str, str],
    *,
    preempt: bool = False,
) -> Outcome:
    """Run attempt ``attempt`` of step ``name`` at its placement; never raises for a step's own failure."""

    def work(run: Attempt) -> StepResult | Published:
        return _step_work(ctx, run, placement, inputs, preempt=preempt)

    return run_attempt(ctx, name, placement, attempt, cache_key, work)


def _step_work(
    ctx: RunContext, run: Attempt, placement: Placement, inputs: Mapping[str, str], *, preempt: bool
) -> StepResult | Published:
    """Check the step may start, run it (at one site, or over several), then publish and register."""
    name, site, workdir = run.step, run.site, run.workdir
    step = ctx.pipeline.steps[name]
    # Where the step's machines may be: what it reads binds them (a federated step's data stays put).
    bound = frozenset() if step.kind == "federated" else step_residency(step.inputs, ctx.residency)
    ctx.policy.check_start(ctx.pipeline, ctx.run_id, placement, bound, ctx.placer.offering)
    machines: list[str] = []  # every site of a multi-site step, coordinator first
    if step.kind == "single":
        run.state("staging", f"fetching {len(inputs)} input(s) to {site}")
        local_inputs = stage_inputs(ctx, name, site, inputs, workdir / "inputs")
        request = step_request(ctx, name, site, workdir, local_inputs)
        result = run_request(ctx, request, placement, preempt=preempt, attempt=run.number)
        produced = request.outputs
    else:
        sites = participant_sites(ctx, name, placement)
        machines = list(dict.fromkeys([site, *sites]))
        run.state("staging", f"{step.kind} over {', '.join(sites)}; coordinator {site}")
        result, produced = run_multi_site(ctx, name, placement, run.number, inputs, workdir, machines)
    if not result.ok:
        return result
    targets = ", ".join(dict.fromkeys([site, *step.replicate.sites]))
    run.state("publishing", f"writing {len(step.outputs)} output(s) to {targets}")
    forbidden = resident_inputs(ctx, name, inputs)
    outputs = {
        out: ctx.data.publish(
            path,
            [site, *step.replicate.sites],
            artifact=f"{name}.{out}",
            step=name,
            residency=ctx.residency.get(f"{name}.{out}", frozenset()),
            min_replicas=step.replicate.min,
            resident_inputs=forbidden,
        )
        for out, path in produced.items()
    }
    if step.registration is not None:
        where = machines or [site]
        run.state("publishing", register_output(ctx, name, where, inputs, outputs, produced, result.metrics))
    ran = f"ran {result.duration_s:.1f} s"
    return Published(
        result,
        outputs,
        refs={f"{name}.{out}": sha for out, sha in outputs.items()},
        message=", ".join(w for w in (ran, metrics_words(result.metrics, limit=6)) if w),
        sites=machines,
    )
