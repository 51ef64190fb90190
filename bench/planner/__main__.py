"""``python -m bench.planner``: time the planner on random chains, in-trees and layered DAGs.

Every case runs in a child process under a hard time limit, so the run always ends (about ten minutes
with the defaults, most of it DAG MILPs at the planner's own limit and the SkyPilot DAG at its
timeout). Results are printed and appended, dated, to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from bench.planner.instances import SHAPES, Shape, make_instance, make_platform
from bench.planner.report import AnchorRow, Settings, render
from bench.planner.runner import CaseResult, run_case
from bench.planner.sky_anchor import find_sky_python, run_sky
from bench.results import RESULTS, append_section
from stratus.catalog import Catalog
from stratus.planner import build_problem
from stratus.planner.solve import DEFAULT_TIME_LIMIT_S


def _shapes(text: str) -> list[Shape]:
    shapes = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        raise SystemExit(f"unknown shape(s) {', '.join(unknown)}; expected some of {', '.join(SHAPES)}")
    return [s for s in SHAPES if s in shapes]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.planner", description=__doc__)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated: chain,tree,dag")
    parser.add_argument("--sizes", default="10,50,200,1000", help="comma-separated step counts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--milp-time-limit",
        type=float,
        default=DEFAULT_TIME_LIMIT_S,
        help="the planner's MILP limit, after which it returns its best plan and proven gap "
        "(default: the planner's default)",
    )
    parser.add_argument("--time-limit", type=float, default=120.0, help="hard limit per case, seconds")
    parser.add_argument("--check-max", type=int, default=200, help="DP-vs-MILP check up to this size")
    parser.add_argument(
        "--no-skip",
        action="store_true",
        help="solve larger sizes even after a smaller one of the same shape timed out "
        "(by default they only report the MILP's size)",
    )
    parser.add_argument("--anchor-steps", type=int, default=50, help="SkyPilot anchor size; 0: none")
    parser.add_argument("--sky-timeout", type=float, default=300.0)
    parser.add_argument("--no-sky", action="store_true", help="skip the live SkyPilot anchor")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    if args.time_limit <= args.milp_time_limit:
        parser.error("--time-limit (hard, per case) must exceed --milp-time-limit (the planner's own)")
    shapes = _shapes(args.shapes)
    sizes = [int(part) for part in args.sizes.split(",") if part.strip()]

    catalog = Catalog.bundled()
    platform, gaps = make_platform(catalog)
    cases: list[CaseResult] = []
    for shape in shapes:
        solve_timed_out = False
        for steps in sizes:
            result = run_case(
                shape,
                steps,
                args.seed,
                repeats=3 if steps <= 200 else 1,
                check=steps <= args.check_max,
                model_only=solve_timed_out and not args.no_skip,
                time_limit_s=args.time_limit,
                milp_time_limit_s=args.milp_time_limit,
            )
            cases.append(result)
            _progress(result)
            solve_timed_out |= result.status == "timeout" and result.solver is None

    anchors: list[AnchorRow] = []
    if args.anchor_steps:
        python = None if args.no_sky else find_sky_python()
        for shape in ("chain", "dag"):
            if shape not in shapes:
                continue
            ours = next((c for c in cases if c.shape == shape and c.steps == args.anchor_steps), None)
            if ours is None:
                ours = run_case(
                    shape,
                    args.anchor_steps,
                    args.seed,
                    repeats=3,
                    check=False,
                    model_only=False,
                    time_limit_s=args.time_limit,
                    milp_time_limit_s=args.milp_time_limit,
                )
            if python is None:
                why = (
                    "--no-sky"
                    if args.no_sky
                    else "no SkyPilot venv (/tmp/skyvenv or $STRATUS_BENCH_SKY_PYTHON)"
                )
                anchors.append(AnchorRow(shape, args.anchor_steps, ours, None, why))
                continue
            print(f"SkyPilot {shape} {args.anchor_steps} …", flush=True)
            instance = make_instance(shape, args.anchor_steps, args.seed, platform)
            problem = build_problem(instance.pipeline, platform, catalog, "cost")
            sky = run_sky(python, instance, problem, args.sky_timeout)
            print(f"  {sky.note} optimize_s={sky.optimize_s} method={sky.method}", flush=True)
            anchors.append(AnchorRow(shape, args.anchor_steps, ours, sky))

    settings = Settings(
        seed=args.seed,
        time_limit_s=args.time_limit,
        milp_time_limit_s=args.milp_time_limit,
        sky_timeout_s=args.sky_timeout,
        sites=len(platform.sites),
        sites_by_provider=dict(Counter(site.provider for site in platform.sites.values())),
        egress_gaps=gaps,
    )
    text = render(settings, cases, anchors)
    print()
    print(text)
    if not args.no_write:
        append_section(args.results, text)
        print(f"appended to {args.results}")


def _progress(c: CaseResult) -> None:
    solve = "—" if c.solve_s is None else f"{c.solve_s:.4f}s"
    gap = "" if not c.gap else f" (gap {c.gap:.1%})"
    build = "—" if c.build_s is None else f"{c.build_s:.3f}s"
    extra = f" milp={c.milp}" if c.milp else ""
    print(
        f"{c.shape:5} {c.steps:5}  cands={c.candidates}  build={build}  solve={solve}  "
        f"{c.solver or '—'}{gap}  {c.status} {c.note}{extra}",
        flush=True,
    )


if __name__ == "__main__":
    main()
