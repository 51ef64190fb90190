"""A Plan as people read it: steps, transfers and totals, like SkyPilot's optimizer table."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console
from rich.table import Table

from stratus.planner import Plan
from stratus.units import format_usd

__all__ = ["render_plan"]


def _usd(value: Decimal) -> str:
    return format_usd(value)


def render_plan(out: Console, plan: Plan, explain: bool = False) -> None:
    """Print the plan; with ``explain``, the runners-up per step and the reasons sites were rejected."""
    steps = Table(title=f"Plan for {plan.pipeline} (objective: {plan.objective})", title_justify="left")
    for column in ("step", "site", "provider/region", "offering", "pricing", "$/h", "hours", "cost"):
        steps.add_column(column, justify="right" if column in ("$/h", "hours", "cost") else "left")
    for p in plan.placements:
        steps.add_row(
            p.step,
            p.site,
            f"{p.provider}/{p.region}",
            p.offering,
            p.pricing,
            _usd(p.price_per_hour_usd),
            f"{p.hours:g}",
            _usd(p.cost_usd),
        )
        for q in p.participants:  # a multi-site step's other machines; its cost above includes them
            steps.add_row(
                "",
                f"+ {q.site}",
                f"{q.provider}/{q.region}",
                q.offering,
                q.pricing,
                _usd(q.price_per_hour_usd),
                f"{p.hours:g}",
                f"({_usd(q.cost_usd)})",
            )
    out.print(steps)

    if plan.transfers:
        transfers = Table(title="Transfers", title_justify="left")
        for column in ("artifact", "from", "to", "GB", "$/GB", "cost", "why"):  # GB: 10^9 bytes
            transfers.add_column(column, justify="right" if column in ("GB", "$/GB", "cost") else "left")
        for t in plan.transfers:
            transfers.add_row(
                t.artifact,
                t.from_site,
                t.to_site,
                f"{t.size_gb:g}",
                _usd(t.usd_per_gb),
                _usd(t.cost_usd),
                t.reason,
            )
        out.print(transfers)
    else:
        out.print("Transfers: none (every artifact is read where it was written)")

    _render_storage(out, plan)
    _render_sizes(out, plan, explain)
    out.print(
        f"[bold]Total {_usd(plan.total_cost_usd)}[/] = compute {_usd(plan.compute_cost_usd)} + egress "
        f"{_usd(plan.egress_cost_usd)}; makespan {plan.makespan_hours:.2f} h; "
        + (
            f"optimal by {plan.solver} over {plan.candidates} candidates"
            if plan.optimality_gap == 0
            else f"[yellow]best found by {plan.solver} within the time limit, not proven optimal: "
            + (
                f"at most {plan.optimality_gap:.1%} above a proven lower bound[/] "
                if plan.optimality_gap is not None
                else "no useful lower bound proven yet[/] "
            )
            + f"({plan.candidates} candidates; a larger --time-limit may close the gap)"
        )
    )
    if plan.storage:
        out.print(
            f"Storage of the copies the run leaves: {_usd(plan.storage_usd_per_month)} per month "
            "(not in the run total above; the ledger books one month of each replica)"
        )
    if explain:
        _render_explanation(out, plan)


def _render_storage(out: Console, plan: Plan) -> None:
    if not plan.storage:
        return
    table = Table(title="Storage left behind, per month", title_justify="left")
    for column in ("artifact", "site", "GB", "$/GB-month", "$/month", "source"):
        table.add_column(column, justify="right" if column in ("GB", "$/GB-month", "$/month") else "left")
    for c in plan.storage:
        table.add_row(
            c.artifact, c.site, f"{c.size_gb:g}", _usd(c.usd_per_gb_month), _usd(c.monthly_usd), c.source
        )
    out.print(table)


def _render_sizes(out: Console, plan: Plan, explain: bool) -> None:
    """Which size each output was priced at; every output with --explain, else only the replaced ones."""
    shown = [s for s in plan.sizes if explain or s.used == "measured"]
    if not shown:
        return
    table = Table(title="Output sizes used (GB)", title_justify="left")
    for column in ("artifact", "declared", "last measured", "used"):
        table.add_column(column, justify="left" if column == "artifact" else "right")
    for s in shown:
        measured = "-" if s.measured_gb is None else f"{s.measured_gb:.6g} (run {s.measured_run})"
        used = f"{s.used_gb:.6g} ({s.used}" + (
            ", >10x off the declared size)" if s.used == "measured" else ")"
        )
        table.add_row(s.artifact, f"{s.declared_gb:g}", measured, used)
    out.print(table)


def _render_explanation(out: Console, plan: Plan) -> None:
    if plan.alternatives:
        runners = Table(title="Runners-up (moving only that step)", title_justify="left")
        for column in ("step", "site", "offering", "pricing", "plan total", "vs chosen"):
            runners.add_column(column, justify="right" if column in ("plan total", "vs chosen") else "left")
        for a in plan.alternatives:
            runners.add_row(
                a.step,
                a.site,
                a.offering,
                a.pricing,
                _usd(a.total_cost_usd),
                ("+" if a.delta_usd >= 0 else "-") + _usd(abs(a.delta_usd)),
            )
        out.print(runners)
    if plan.rejections:
        rejected = Table(title="Rejected sites", title_justify="left")
        rejected.add_column("step")
        rejected.add_column("site")
        rejected.add_column("why")
        for r in plan.rejections:
            rejected.add_row(r.step, r.site, "; ".join(r.reasons))
        out.print(rejected)
    if plan.pruned_sites:
        pruned = Table(title="Sites pruned before solving (exactly dominated)", title_justify="left")
        pruned.add_column("site")
        pruned.add_column("why")
        for site, why in plan.pruned_sites:
            pruned.add_row(site, why)
        out.print(pruned)
    if plan.policy_denials:
        denied = Table(title="Choices denied by policy (the site stays usable)", title_justify="left")
        denied.add_column("step")
        denied.add_column("site")
        denied.add_column("why")
        for r in plan.policy_denials:
            denied.add_row(r.step, r.site, "; ".join(r.reasons))
        out.print(denied)
