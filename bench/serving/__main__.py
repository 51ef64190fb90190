"""``python -m bench.serving``: our V2 model server against ONNX Runtime's floor, MLServer and HAProxy.

All cases run in one go on one machine, so their figures can be compared: (1) the floor, ORT's own calls/s;
(2) our server against MLServer 1.7.1, 16 connections; (3) the proxy hop: direct, through our gateway,
through HAProxy, at 16 connections and at 1; (4) failover: two servers behind each proxy under load, one
SIGKILLed (then SIGTERMed, which makes ours drain) at 1/3 of the run and restarted at 2/3, failed
requests counted. wrk, HAProxy and MLServer are installed when missing. The "Serving" section of
``bench/RESULTS.md`` is replaced by this run's. A default run (``--duration 10``) takes about 3 minutes, plus
about 30 s the first time to create MLServer's venv.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.serving import ours, peers
from bench.serving.cases import (
    Context,
    failover_case,
    floor_case,
    gateway_case,
    profile_case,
    serve_case,
)
from bench.serving.model import binary_request_body, make_logit, request_body
from bench.serving.processes import pin
from bench.serving.report import Report, render, replace_section
from stratus.serving.model import default_intra_op_threads

RESULTS = Path(__file__).resolve().parents[1] / "RESULTS.md"
CASES = ("floor", "serve", "gateway", "profile", "failover")


def _wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout
    words = out.split()
    return words[1] if len(words) > 1 else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of discarded load before each run")
    parser.add_argument("--drain-s", type=float, default=2.0, help="our servers' --drain-s (SIGTERM)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {CASES}")
    parser.add_argument("--no-mlserver", action="store_true", help="skip MLServer (no venv install)")
    parser.add_argument("--no-tuned-haproxy", action="store_true", help="skip the tuned HAProxy row")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, configs)")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {CASES}")
    if args.duration < 3:
        parser.error("--duration must be at least 3 s (failover kills at 1/3 and restarts at 2/3)")

    started = time.monotonic()
    peers.ensure_tools()
    mlserver: Path | str = "--no-mlserver"
    if "serve" in cases and not args.no_mlserver:
        try:
            mlserver = peers.ensure_mlserver()
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            mlserver = f"could not install: {str(exc).splitlines()[0]}"
            print(f"! MLServer {mlserver}", flush=True)
    gateway_missing = ours.gateway_missing()
    if gateway_missing:
        print(f"! Stratus gateway rows skipped: {gateway_missing}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-serving-"))
    body = work / "request.json"
    body.write_bytes(request_body())
    binary = work / "request.bin"
    payload, header_len = binary_request_body()
    binary.write_bytes(payload)
    threads = default_intra_op_threads()
    ctx = Context(
        work,
        make_logit(work / "logit.onnx"),
        body,
        args.duration,
        args.warmup,
        args.drain_s,
        threads,
        binary,
        header_len,
    )
    floor = serve = gateway = failover = profile = None
    try:
        if "floor" in cases:
            print("floor: ONNX Runtime in-process …", flush=True)
            floor = floor_case(ctx)
        if "serve" in cases:
            print("serve: Stratus server, MLServer …", flush=True)
            serve = serve_case(ctx, mlserver)
        if "gateway" in cases:
            print("gateway: direct, Stratus gateway, HAProxy at 16 and 1 connections …", flush=True)
            gateway = gateway_case(ctx, gateway_missing)
        if "profile" in cases:
            print("profile: the gateway under py-spy …", flush=True)
            profile = profile_case(ctx, gateway_missing)
        if "failover" in cases:
            print("failover: SIGKILL and SIGTERM behind each proxy …", flush=True)
            failover = failover_case(ctx, gateway_missing, tuned_haproxy=not args.no_tuned_haproxy)
    finally:
        if args.keep:
            print(f"scratch folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    mlserver_note = f"MLServer {peers.MLSERVER_VERSION}" if isinstance(mlserver, Path) else "MLServer not run"
    report = Report(
        duration=args.duration,
        warmup=args.warmup,
        drain_s=args.drain_s,
        threads=threads,
        pinned=pin(0, ["x"]) != ["x"],
        floor=floor,
        serve=serve or [],
        gateway=gateway or {},
        failover=failover or [],
        profile=profile,
        tools=f"wrk {_wrk_version()}, HAProxy {peers.haproxy_version()}, {mlserver_note}",
        elapsed_s=time.monotonic() - started,
    )
    text = render(report)
    print()
    print(text)
    if not args.no_write:
        replace_section(args.results, text)
        print(f"Serving section replaced in {args.results}")


if __name__ == "__main__":
    main()
