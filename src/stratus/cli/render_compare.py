"""``stratus plan --compare`` as people read it: what each narrower plan costs, and where the saving is."""

from __future__ import annotations

from decimal import Decimal

from rich.console import Console
from rich.table import Table

from stratus.planner.compare import Comparison, Priced
from stratus.units import format_usd

__all__ = ["render_comparison"]


def _usd(value: Decimal | None) -> str:
    return "—" if value is None else format_usd(value)


def _hours(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} h"


def render_comparison(out: Console, comparison: Comparison) -> None:
    """One row per plan (Stratus first), then the saving split into spot and placement."""
    table = Table(
        title=f"What multi-cloud saves on {comparison.pipeline} (objective: {comparison.objective})",
        title_justify="left",
    )
    for column in ("plan", "total", "Stratus saves", "makespan", "spot off", "sites / why not"):
        table.add_column(
            column,
            justify="right" if column in ("total", "Stratus saves", "makespan", "spot off") else "left",
        )
    for row in (comparison.stratus, *comparison.rows):
        table.add_row(
            row.label,
            _usd(row.total_cost_usd) + _gap(row),
            _saved(comparison, row),
            _hours(row.makespan_hours),
            _usd(row.on_demand_cost_usd),
            ", ".join(row.sites) if row.infeasible is None else f"infeasible: {row.infeasible}",
        )
    out.print(table)
    saving = comparison.saving
    if saving is None:
        out.print("No single-provider plan is feasible: every saving above is placement across providers.")
        return
    out.print(
        f"[bold]Against the best single-provider plan on on-demand prices ({saving.baseline}, "
        f"{_usd(saving.baseline_usd)}), Stratus saves {_usd(saving.total_usd)}"
        f"{_percent(saving.total_usd, saving.baseline_usd)}[/]: spot {_usd(saving.spot_usd)}, "
        f"placement across providers {_usd(saving.placement_usd)}. With spot off everywhere, placement "
        f"alone saves {_usd(saving.placement_on_demand_usd)}."
    )
    out.print(
        "Each row is the same exact planner restricted to those sites (residency, constraints and "
        "policies still hold; datasets and replicas stay where the pipeline puts them), priced by the "
        "same model. SkyPilot's model: one instance type per cloud, egress free inside a cloud and "
        "the source's internet rate between clouds; its choice is re-priced here with ours."
    )


def _saved(comparison: Comparison, row: Priced) -> str:
    if row.kind == "stratus":
        return ""
    saved = comparison.saved(row)
    if saved is None:
        return "—"
    delta, fraction = saved
    return f"{_usd(delta)} ({fraction:.1%})"


def _percent(part: Decimal, whole: Decimal) -> str:
    return f" ({float(part / whole):.1%})" if whole > 0 else ""


def _gap(row: Priced) -> str:
    if row.optimality_gap is None and row.total_cost_usd is not None:
        return " (no bound)"
    if row.optimality_gap:
        return f" (gap ≤{row.optimality_gap:.1%})"
    return ""
