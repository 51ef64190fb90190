"""``python -m bench.policy``: µs per decision for both Rego engines, and the fraud plan's policy time.

Prints the figures and replaces its section of bench/RESULTS.md (about a minute).
"""

from __future__ import annotations

import argparse
import time

from bench.policy.engines import EngineTiming, time_regopy, time_regorus
from bench.policy.plan import PlanTiming, time_plans
from bench.results import RESULTS, machine, replace_section, revision
from stratus.config.platform import LIBRARY_DIR
from stratus.policy import PolicyEngine
from stratus.policy.loader import read_modules

TITLE = "Policy as code: µs per Rego decision (regorus vs regopy) and the fraud plan under the library"


def _worker_us(repeat: int) -> float:
    """Our engine end to end (the worker process, JSON over a pipe), per decision in batches of 4."""
    from bench.policy.engines import ALLOWED, TEAMS

    with PolicyEngine(read_modules([LIBRARY_DIR], LIBRARY_DIR, tests=False), TEAMS) as engine:
        docs = [{**ALLOWED, "price_per_hour_usd": 0.5 + i / 1000} for i in range(repeat)]
        engine.decide(docs[:4])
        start = time.perf_counter()
        for i in range(0, repeat, 4):
            engine.decide(docs[i : i + 4])
        return (time.perf_counter() - start) / repeat * 1e6


def render(engines: list[EngineTiming], worker_us: float, plans: PlanTiming) -> str:
    def us(value: float | None) -> str:
        return f"{value:,.0f}" if value is not None else "-"

    rows = "\n".join(f"| {e.engine} | {us(e.allowed_us)} | {us(e.denied_us)} | {e.note} |" for e in engines)
    return (
        f"## {TITLE}\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M')}; {machine()}; {revision()}.\n\n"
        "The shipped library (7 modules), one plan-candidate document; µs per decision (deny, then allow "
        "when nothing denied), in-process.\n\n"
        "| engine | allowed (µs) | denied (µs) | notes |\n| --- | ---: | ---: | --- |\n"
        f"{rows}\n"
        f"| Stratus's PolicyEngine (regorus in its worker, batches of 4) | {us(worker_us)} | | "
        "end to end: JSON over a pipe, a deadline per decision |\n\n"
        f"`stratus plan` of examples/fraud-detection (median of {plans.runs}): "
        f"{plans.plain_s * 1000:,.0f} ms without policies, {plans.governed_s * 1000:,.0f} ms under "
        f"governed.yaml (`stratus:library` + policies/teams.yaml), of which {plans.policy_s * 1000:,.0f} ms "
        f"in the policy (worker start and {plans.decisions} decisions); the issue's budget for the policy "
        "part is 1 s.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.policy", description=__doc__)
    parser.add_argument("--repeat", type=int, default=400, help="decisions timed per engine and case")
    parser.add_argument("--plans", type=int, default=5, help="plans timed each way")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    modules = read_modules([LIBRARY_DIR], LIBRARY_DIR, tests=False)
    engines = [time_regorus(modules, args.repeat), time_regopy(modules, args.repeat)]
    text = render(engines, _worker_us(args.repeat), time_plans(args.plans))
    print(text)
    if not args.no_write:
        replace_section(RESULTS, TITLE, text)


if __name__ == "__main__":
    main()
