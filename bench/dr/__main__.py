"""``python -m bench.dr``: serving through DNS while a server, a gateway, then a whole site is killed.

Starts two sites (on sandbox S3 and GCS servers unless ``--no-sandbox``), stores a model at both with
``stratus run``, serves it with two gateways and the DNS responder, then runs the drills of
:mod:`bench.dr.scenarios` under load from re-resolving and naive clients at once, and replaces the
"DR" section of ``bench/RESULTS.md``. A default run takes about 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.dr.report import TITLE, Report, render, targets_met
from bench.dr.scenarios import SCENARIOS, Settings
from bench.dr.world import World, build_world, serve, stop
from bench.results import RESULTS, machine, replace_section
from bench.serving.processes import LOAD_CPU, SERVER_CPU, pin
from stratus.errors import StorageError

SANDBOX_STORES = "sandbox servers (SeaweedFS behind S3 for aws-us-east, fake-gcs-server for gcp-eu-west)"


def _world(folder: Path, use_sandbox: bool) -> tuple[World, str]:
    """The world, on sandbox stores when asked and installed, else on folders (and the report says so)."""
    if use_sandbox:
        try:
            return build_world(folder, use_sandbox=True), SANDBOX_STORES
        except StorageError as exc:
            reason = str(exc).splitlines()[0]
            print(f"! sandbox stores unavailable ({reason}); using folders", flush=True)
            shutil.rmtree(folder, ignore_errors=True)
            return build_world(folder, use_sandbox=False), f"folders (the sandbox could not start: {reason})"
    return build_world(
        folder, use_sandbox=False
    ), "folders (--no-sandbox; a whole site's store is not killed)"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dr", description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of {tuple(SCENARIOS)}")
    parser.add_argument("--threads", type=int, default=4, help="client threads of each kind")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each kill")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds of load once whole again")
    parser.add_argument("--timeout", type=float, default=45.0, help="seconds a drill may take to heal")
    parser.add_argument("--max-requests", type=int, default=20_000, help="per client thread and drill")
    parser.add_argument("--no-sandbox", action="store_true", help="folders as stores (none is killed)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--json", action="store_true", help="also print every drill as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, record)")
    args = parser.parse_args()
    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown or not names:
        parser.error(f"--scenarios: unknown {unknown}; choose from {tuple(SCENARIOS)}")
    if args.threads < 1 or args.max_requests < 1:
        parser.error("--threads and --max-requests must be at least 1")

    started = time.monotonic()
    machine_line = machine()
    settings = Settings(args.threads, args.warmup, args.settle, args.timeout, args.max_requests)
    folder = Path(tempfile.mkdtemp(prefix="stratus-bench-dr-"))
    print(f"stores and model (scratch {folder}) …", flush=True)
    world, stores = _world(folder / "world", not args.no_sandbox)
    pinned = pin(SERVER_CPU, ["x"]) != ["x"]
    drills = []
    try:
        print("serving: 2 sites, 2 gateways, DNS …", flush=True)
        serve(world, cpu=SERVER_CPU if pinned else None)
        if pinned:
            os.sched_setaffinity(0, {LOAD_CPU})
        for name in names:
            print(f"drill: {name} …", flush=True)
            drill = SCENARIOS[name](world, settings)
            drills.append(drill)
            print(
                f"  {'targets met' if targets_met(drill) else 'TARGET MISSED'}: {drill.to_json()}", flush=True
            )
    finally:
        stop(world)
        if args.keep:
            print(f"scratch folder kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    text = render(Report(drills, settings, stores, pinned, time.monotonic() - started, machine_line))
    print()
    print(text)
    if args.json:
        print(json.dumps([drill.to_json() for drill in drills], indent=2))
    if not args.no_write:
        replace_section(args.results, TITLE, text)
        print(f"{TITLE} section replaced in {args.results}")


if __name__ == "__main__":
    main()
