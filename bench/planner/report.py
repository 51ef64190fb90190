"""Markdown for RESULTS.md: the machine, one table per concern, and the anchor comparison."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from bench.planner.runner import CaseResult
from bench.planner.sky_anchor import QUOTED, SkyResult
from bench.results import machine, revision

__all__ = ["AnchorRow", "Settings", "render"]


@dataclass(frozen=True)
class Settings:
    """What the run was asked to do, for the report's header."""

    seed: int
    time_limit_s: float
    milp_time_limit_s: float
    sky_timeout_s: float
    sites: int
    sites_by_provider: dict[str, int]
    egress_gaps: Sequence[str]


@dataclass(frozen=True)
class AnchorRow:
    """One anchored case: our figures and SkyPilot's on the same instance."""

    shape: str
    steps: int
    stratus: CaseResult
    sky: SkyResult | None  # None: no SkyPilot venv
    sky_note: str = ""


def _s(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if value < 1 else f"{value:.2f}"


def _usd(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _n(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def render(settings: Settings, cases: Sequence[CaseResult], anchors: Sequence[AnchorRow]) -> str:
    """The dated section appended to RESULTS.md for one run."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    by_provider = ", ".join(f"{p} {n}" for p, n in settings.sites_by_provider.items())
    lines = [
        f"## Planner — {now}",
        "",
        f"- Machine: {machine()}.",
        f"- Stratus: {revision()}. Objective: cost. Seed {settings.seed}.",
        f"- Platform: {settings.sites} sites ({by_provider}): every region of the bundled catalog, "
        "`offerings: catalog`, spot and on-demand.",
        f"- Limits: the planner stops at {settings.milp_time_limit_s:.0f} s (`solve(problem, "
        "time_limit_s)`) and returns its best plan with its proven gap; each case is a child "
        f"process killed at {settings.time_limit_s:.0f} s; SkyPilot {settings.sky_timeout_s:.0f} s.",
        "- Build and solve are the best of 3 up to 200 steps (one run when a run takes over 5 s), one "
        "run at 1000. Peak MB: the case process's max RSS up to the end of the solve (interpreter, SciPy "
        "and catalog included: about 85 MB; the DP-vs-MILP check runs after it).",
    ]
    if settings.egress_gaps:
        lines.append(
            f"- The bundled egress table cannot price {len(settings.egress_gaps)} site pairs "
            f"({', '.join(settings.egress_gaps)}); the bench gives them a platform `egress:` override of "
            "$0.08/GB so the catalog can be used whole."
        )
    lines += ["", *_cases_table(cases), "", *_lp_table(cases), "", *_milp_table(cases)]
    lines += ["", *_check_table(cases)]
    lines += ["", *_anchor_table(anchors), ""]
    return "\n".join(lines)


def _cases_table(cases: Sequence[CaseResult]) -> list[str]:
    rows = [
        "| shape | steps | sites | candidates | build s | solve s | solver | optimal | cost USD | "
        "peak MB | status |",
        "|---|--:|--:|--:|--:|--:|---|---|--:|--:|---|",
    ]
    for c in cases:
        status = c.status if not c.note else f"{c.status}: {c.note}"
        peak = "—" if c.peak_mb is None else f"{c.peak_mb:.0f}"
        rows.append(
            f"| {c.shape} | {c.steps} | {_n(c.sites)} | {_n(c.candidates)} | {_s(c.build_s)} | "
            f"{_s(c.solve_s)} | {c.solver or '—'} | {_optimal(c.gap)} | {_usd(c.cost_usd)} | {peak} | "
            f"{status} |"
        )
    return rows


def _optimal(gap: float | None) -> str:
    if gap is None:
        return "—"
    if gap == float("inf"):
        return "**no**: no useful lower bound at the time limit"
    return "proven" if gap == 0 else f"**no**: proven gap {gap:.2%}"


def _lp_table(cases: Sequence[CaseResult]) -> list[str]:
    with_lp = [c for c in cases if c.lp]
    if not with_lp:
        return []
    rows = [
        "LP relaxation of the cost MILP (HiGHS's PDLP `hipdlp`, one thread; its row prices made a proven "
        "bound by weak duality; its solution rounded and improved by local search), as `solve` runs it "
        "before any branch and bound:",
        "",
        "| shape | steps | variables | rows | nonzeros | PDLP s | outcome |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for c in with_lp:
        m = c.lp
        if "lp_s" not in m:
            outcome = "size only"
        elif m.get("priced"):
            outcome = f"solved ({m.get('message')})"
        else:
            outcome = f"no prices ({m.get('message')}): the decomposition's bound instead"
        rows.append(
            f"| {c.shape} | {c.steps} | {_n(m.get('vars'))} | {_n(m.get('rows'))} | "
            f"{_n(m.get('nonzeros'))} | {_s(m.get('lp_s'))} | {outcome} |"
        )
    return rows


def _milp_table(cases: Sequence[CaseResult]) -> list[str]:
    with_milp = [c for c in cases if c.milp]
    if not with_milp:
        return []
    rows = [
        "MILP (HiGHS via highspy, `mip_rel_gap` 0, dominated sites pruned, warm start from the tree DP "
        "improved by local search and the LP's rounded solution) where `solve` branches (the LP did not "
        "prove the plan):",
        "",
        "| shape | steps | multi-reader artifacts | variables | binaries | rows | nonzeros | HiGHS s | "
        "B&B nodes | best found / proven bound (USD) | outcome |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for c in with_milp:
        m = c.milp
        if "highs_s" in m or "status" in m:
            if m.get("status") == 0:
                outcome = "optimal"
            elif m.get("objective") is None:
                outcome = "time limit, no placement found"
            elif m.get("gap") is None:
                outcome = "time limit, no lower bound yet"
            else:
                outcome = f"time limit, gap {m['gap']:.1%}"
        elif c.status == "timeout":
            outcome = f"killed at {c.time_limit_s:.0f} s"
        else:
            outcome = "size only (not solved: a smaller case of this shape was killed)"
        found = "—" if m.get("objective") is None else f"{m['objective']:.2f} / {m.get('bound') or 0:.2f}"
        rows.append(
            f"| {c.shape} | {c.steps} | {_n(c.multi_reader_flows)} | {_n(m.get('vars'))} | "
            f"{_n(m.get('binaries'))} | {_n(m.get('rows'))} | {_n(m.get('nonzeros'))} | "
            f"{_s(m.get('highs_s'))} | {_n(m.get('nodes'))} | {found} | {outcome} |"
        )
    return rows


def _check_table(cases: Sequence[CaseResult]) -> list[str]:
    checked = [c for c in cases if c.solver == "tree-dp" and (c.check or c.status == "timeout")]
    if not checked:
        return []
    rows = [
        "Optimality: the tree DP's plan against `solve_milp` on the same Problem, both priced by `evaluate`:",
        "",
        "| shape | steps | DP cost USD | MILP cost USD | equal | MILP s |",
        "|---|--:|--:|--:|---|--:|",
    ]
    for c in checked:
        if c.check:
            milp_cost = Decimal(str(c.check["milp_cost_usd"]))
            gap = c.check.get("milp_gap") or 0.0
            if c.check.get("dp_beaten"):
                equal = f"**NO: the MILP found a cheaper plan** (Δ {c.check['difference_usd']})"
            elif c.check["equal"]:
                equal = "yes" if gap == 0 else f"yes (MILP not proven, gap {gap:.1%})"
            else:
                equal = (
                    f"NO: MILP dearer by {c.check['difference_usd']}"
                    if gap == 0
                    else f"MILP stopped at its limit (gap {gap:.1%}), dearer: DP not beaten"
                )
            rows.append(
                f"| {c.shape} | {c.steps} | {_usd(c.cost_usd)} | {_usd(milp_cost)} | {equal} | "
                f"{_s(c.check['milp_s'])} |"
            )
        else:
            rows.append(
                f"| {c.shape} | {c.steps} | {_usd(c.cost_usd)} | — | MILP did not finish | "
                f"> {c.time_limit_s:.0f} |"
            )
    return rows


def _anchor_table(anchors: Sequence[AnchorRow]) -> list[str]:
    if not anchors:
        return []
    rows = [
        "Anchor: SkyPilot 0.14.1 `Optimizer.optimize(dag, minimize=COST)` on the same instance, live, "
        "in a separate venv (quoted figures from the issue for reference):",
        "",
        "| case | Stratus build+solve s | Stratus cost USD | SkyPilot optimize s (enumerate + solve) | "
        "SkyPilot method | SkyPilot candidates/step | SkyPilot ILP binaries | SkyPilot plan, priced by "
        "Stratus, USD | quoted |",
        "|---|--:|--:|---|---|--:|--:|--:|---|",
    ]
    notes: list[str] = []
    for a in anchors:
        if a.stratus.solve_s is not None:
            ours = _s((a.stratus.build_s or 0.0) + a.stratus.solve_s)
            if a.stratus.gap:
                ours += f" (not proven optimal: gap {a.stratus.gap:.1%})"
        else:
            ours = f"{a.stratus.status}: {a.stratus.note}"
        sky = a.sky
        if sky is None:
            sky_cells = f"not run: {a.sky_note} | — | — | — | —"
        elif not sky.ok:
            sky_cells = f"{sky.note} | — | — | — | —"
        else:
            per_step = sky.candidates_per_step
            spread = f"{min(per_step)}–{max(per_step)} (mean {sum(per_step) / len(per_step):.0f})"
            sky_cells = (
                f"{_s(sky.optimize_s)} ({_s(sky.enumerate_s)} + {_s(sky.solve_s)}) | {sky.method} | "
                f"{spread} | {_n(sky.ilp_binaries)} | {_usd(sky.stratus_cost_of_sky_plan)}"
            )
            notes += [p for p in sky.patched if p not in notes]
        rows.append(
            f"| {a.shape} {a.steps} | {ours} | {_usd(a.stratus.cost_usd)} | {sky_cells} | "
            f"{QUOTED.get(a.shape, '—')} |"
        )
    rows += [
        "",
        "SkyPilot gets the same steps (cpus+, memory+, accelerator, hours as its time estimator, output "
        "size as `set_outputs`, the same edges); spot steps ask for spot only (Stratus may also pick "
        "on-demand). Datasets are left out: SkyPilot would need a bucket to locate them. Its own model "
        "charges egress only between clouds, at one internet rate, and considers only the cheapest "
        "instance type per cloud, so its plan is re-priced with Stratus's model for the cost column.",
    ]
    if notes:
        rows.append("Patched in the SkyPilot process only: " + "; ".join(notes) + ".")
    return rows
