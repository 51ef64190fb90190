# mypy: disable-error-code="import-not-found"
"""Run SkyPilot's optimizer on a benchmark instance; executed by the SkyPilot venv's Python, not ours.

Usage: ``SKY_PYTHON sky_harness.py SPEC.json OUT.json``. Standard library plus ``sky`` only: this file
must not import Stratus (the SkyPilot venv does not have it). The caller sets ``HOME`` to a scratch
directory whose ``.sky/catalogs/v8/{aws,gcp,azure}/vms.csv`` are Stratus's bundled catalog files, so
SkyPilot reads the same prices and never downloads a catalog (a hand-placed catalog is never refreshed).

What is patched, in this process only:

* ``sky.check.get_cached_enabled_clouds_or_refresh`` returns AWS, GCP and Azure. Without credentials
  SkyPilot would enable no cloud and refuse to optimize; nothing else in the optimizer needs them.
* ``Optimizer._estimate_nodes_cost_or_time``, ``_optimize_by_dp`` and ``_optimize_by_ilp`` are wrapped
  with timers (arguments and results pass through unchanged) to split candidate enumeration from the
  solve and to count candidates and ILP size.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

PATCHED = [
    "sky.check.get_cached_enabled_clouds_or_refresh -> [AWS, GCP, Azure] (no credentials needed)",
    "Optimizer._estimate_nodes_cost_or_time/_optimize_by_dp/_optimize_by_ilp wrapped with timers only",
]


def main(spec_path: str, out_path: str) -> None:
    started = time.perf_counter()
    import sky
    from sky import check as sky_check
    from sky import clouds
    from sky.optimizer import Optimizer

    import_s = time.perf_counter() - started
    with open(spec_path, encoding="utf-8") as f:
        spec: dict[str, Any] = json.load(f)

    enabled = [clouds.AWS(), clouds.GCP(), clouds.Azure()]
    sky_check.get_cached_enabled_clouds_or_refresh = lambda *args, **kwargs: list(enabled)
    timings: dict[str, Any] = {}
    _wrap(Optimizer, "_estimate_nodes_cost_or_time", "enumerate_s", timings, None, _record_candidates)
    _wrap(Optimizer, "_optimize_by_dp", "solve_s", timings, lambda a, r, t: t.update(method="dp"), None)
    _wrap(Optimizer, "_optimize_by_ilp", "solve_s", timings, _record_ilp, None)

    tasks: dict[str, Any] = {}
    with sky.Dag() as dag:
        for step in spec["steps"]:
            task = sky.Task(step["name"], run="true")
            task.set_resources(
                {
                    sky.Resources(
                        cpus=f"{step['cpus']}+",
                        memory=f"{step['memory_gb']}+",
                        accelerators=step["accelerator"],
                        use_spot=step["spot"],
                    )
                }
            )
            seconds = int(step["hours"] * 3600)
            task.set_time_estimator(lambda _resources, s=seconds: s)
            task.set_outputs(f"s3://stratus-bench/{step['name']}", estimated_size_gigabytes=step["output_gb"])
            tasks[step["name"]] = task
        for step in spec["steps"]:
            for producer in step["reads"]:
                dag.add_edge(tasks[producer], tasks[step["name"]])

    begun = time.perf_counter()
    Optimizer.optimize(dag, minimize=sky.OptimizeTarget.COST, quiet=True)
    optimize_s = time.perf_counter() - begun
    placement = []
    for step in spec["steps"]:
        best = tasks[step["name"]].best_resources
        placement.append(
            {
                "step": step["name"],
                "cloud": str(best.cloud).lower(),
                "region": best.region,
                "instance": best.instance_type,
                "spot": bool(best.use_spot),
            }
        )
    result = {
        "ok": True,
        "sky_version": sky.__version__,
        "import_s": import_s,
        "optimize_s": optimize_s,
        "placement": placement,
        "patched": PATCHED,
        **timings,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f)


Hook = Callable[[tuple[Any, ...], Any, dict[str, Any]], None]


def _wrap(
    owner: Any, name: str, key: str, timings: dict[str, Any], before: Hook | None, after: Hook | None
) -> None:
    """Time ``owner.name``; hooks record sizes, and every change is printed so a kill still tells."""
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        if before is not None:
            before(args, None, timings)
            _progress(timings)
        begun = time.perf_counter()
        result = original(*args, **kwargs)
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - begun
        if after is not None:
            after(args, result, timings)
        _progress(timings)
        return result

    setattr(owner, name, staticmethod(timed))


def _progress(timings: dict[str, Any]) -> None:
    shown = {k: v for k, v in timings.items() if k != "candidates_per_step"}
    print(json.dumps({"progress": shown}), flush=True)


def _record_candidates(_args: tuple[Any, ...], result: Any, timings: dict[str, Any]) -> None:
    cost_map = result[0]
    # Drop the optimizer's dummy source and sink (one zero-cost candidate each).
    counts = [len(options) for task, options in cost_map.items() if not task.name.startswith("skypilot-")]
    timings["candidates_per_step"] = counts
    timings["candidates"] = sum(counts)


def _record_ilp(args: tuple[Any, ...], _result: Any, timings: dict[str, Any]) -> None:
    graph, _topo_order, cost_map = args[0], args[1], args[2]
    sizes = {task: len(options) for task, options in cost_map.items()}
    edges = list(graph.edges())
    # The ILP as _optimize_by_ilp builds it: a one-hot vector per task, a full |c_u|·|c_v| one-hot
    # vector per edge, and row/column marginal constraints tying each edge vector to its endpoints.
    timings["method"] = "ilp"
    timings["ilp_binaries"] = sum(sizes.values()) + sum(sizes[u] * sizes[v] for u, v in edges)
    timings["ilp_rows"] = len(sizes) + len(edges) + sum(sizes[u] + sizes[v] for u, v in edges)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
