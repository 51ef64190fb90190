"""Sites as Linux network namespaces joined by a link that holds every frame for a fixed one-way delay.

Cross-site training behaves differently at WAN round-trip times, and this kernel has no ``netem`` to add
them. So each host is a network namespace with one TAP device (``eth0``, an address in 10.77.0.0/24), and a
forwarder process in the root namespace holds the TAP file descriptors: it reads each Ethernet frame,
keeps it for the one-way delay and writes it to the destination host's TAP (a small learning switch).
A round trip between two hosts therefore takes at least twice the delay, traffic never leaves the
namespaces this module made, and everything it made goes away on ``__exit__`` (or when its process dies).

    with DelayedNetwork(hosts=2, one_way_delay_ms=10) as net:
        server = net.popen(net.hosts[0], ["python", "-m", "http.server", "8000"])
        net.run(net.hosts[1], ["curl", f"http://{net.hosts[0].address}:8000/"])

``python -m stratus.sandbox.wan --hosts 2 --delay-ms 10`` sets one up and waits for Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import fcntl
import heapq
import itertools
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from stratus.errors import StratusError

__all__ = ["INTERFACE", "DelayedNetwork", "Host", "enter", "wan_unavailable_reason"]

#: The name of each host's one interface inside its namespace (e.g. for ``GLOO_SOCKET_IFNAME``).
INTERFACE = "eth0"
_SUBNET = "10.77.0"
_PREFIX_LENGTH = 24
#: Large frames make the userspace forwarder cheap per byte: a TCP segment of 64 KiB costs one read and
#: one write instead of 44. The delay, not the frame size, is what the network is for. 65521 is the TAP
#: maximum (65535 minus the Ethernet header).
_DEFAULT_MTU = 65520
_NETNS_DIR = Path("/var/run/netns")
_TUN = "/dev/net/tun"
_TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000
_CLONE_NEWNET = 0x40000000
_READY = b"ready\n"
#: Frames read from one TAP before the forwarder looks at the clock again, so a busy sender cannot
#: postpone the release of frames that are already due.
_BURST = 64
_instances = itertools.count()


@dataclass(frozen=True)
class Host:
    """One site: a network namespace and the IPv4 address of its interface."""

    name: str  # the network namespace name
    address: str  # its IPv4 address, e.g. "10.77.0.1"


def wan_unavailable_reason() -> str | None:
    """None when this machine can build a WAN (root, `ip` present, /dev/net/tun usable), else why not.

    Tests skip with this reason instead of failing on machines (laptops, unprivileged CI) that cannot
    create namespaces or TAP devices.
    """
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "creating network namespaces and TAP devices needs root (run as root or skip these tests)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    try:
        fd, _ = _open_tap("strwanprobe%d")
    except OSError as exc:
        return f"cannot create a TAP device through {_TUN}: {exc.strerror or exc}"
    os.close(fd)  # a TAP that is not persistent disappears with its last file descriptor
    return None


class DelayedNetwork:
    """``hosts`` namespaces on one subnet; every frame between them arrives ``one_way_delay_ms`` late.

    Frames are released in arrival order at arrival + delay (a FIFO suffices because the delay is the
    same for every frame), so the link reorders nothing and adds no bandwidth limit of its own.
    Namespace names are ``{prefix}-{pid}-{n}-h{i}``: unique per instance, and cleanup touches only them.
    """

    def __init__(
        self,
        hosts: int = 2,
        one_way_delay_ms: float = 10.0,
        *,
        prefix: str = "strwan",
        mtu: int = _DEFAULT_MTU,
    ) -> None:
        if not 1 <= hosts <= 250:
            raise StratusError(f"DelayedNetwork: hosts must be between 1 and 250, got {hosts}")
        if one_way_delay_ms < 0:
            raise StratusError(f"DelayedNetwork: one_way_delay_ms must be 0 or more, got {one_way_delay_ms}")
        if not 68 <= mtu <= 65520:
            raise StratusError(f"DelayedNetwork: mtu must be between 68 and 65520, got {mtu}")
        if not prefix or not all(c.isalnum() or c in "-_" for c in prefix):
            raise StratusError(f"DelayedNetwork: prefix must be letters, digits, '-' or '_', got {prefix!r}")
        self.one_way_delay_ms = float(one_way_delay_ms)
        self.mtu = mtu
        self.hosts: list[Host] = []
        self._count = hosts
        self._prefix = prefix
        self._namespaces: list[str] = []  # exactly those this instance created, for cleanup
        self._forwarder: subprocess.Popen[bytes] | None = None
        self._children: list[subprocess.Popen[Any]] = []
        self._lock = threading.Lock()
        self._entered = False

    @property
    def interface(self) -> str:
        """The interface name inside every host's namespace."""
        return INTERFACE

    def __enter__(self) -> DelayedNetwork:
        """Create the namespaces and TAP devices and start the forwarder; StratusError if impossible."""
        with self._lock:
            if self._entered:
                raise StratusError("DelayedNetwork: already set up; use a new instance for a new network")
            self._entered = True
        reason = wan_unavailable_reason()
        if reason is not None:
            raise StratusError(f"cannot build a delayed network: {reason}")
        atexit.register(self.close)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop everything started in the namespaces and the forwarder, delete the namespaces. Idempotent."""
        self.close()

    def close(self) -> None:
        """What ``__exit__`` does; also run at interpreter exit so a crashed test leaves nothing behind."""
        with self._lock:
            atexit.unregister(self.close)
            for child in self._children:
                if child.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        child.terminate()
            for child in self._children:
                try:
                    child.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            self._children.clear()
            forwarder, self._forwarder = self._forwarder, None
            if forwarder is not None:
                # The forwarder tears the namespaces down itself when told to stop (or when we die).
                if forwarder.stdin is not None:
                    with contextlib.suppress(OSError):
                        forwarder.stdin.close()
                with contextlib.suppress(ProcessLookupError):
                    forwarder.terminate()
                try:
                    forwarder.wait(timeout=10.0)
                except subprocess.TimeoutExpired:
                    forwarder.kill()
                    forwarder.wait()
                if forwarder.stdout is not None:
                    forwarder.stdout.close()
            # Closing the forwarder closed the last TAP descriptors, which deleted the TAPs; whatever the
            # forwarder did not get to (it may have crashed) is removed here.
            _remove_namespaces(self._namespaces)
            self._namespaces.clear()

    def cut(self, host: Host) -> None:
        """Cut ``host`` off: every frame from or to it is dropped until :meth:`heal` (a partition)."""
        self._control(f"cut {self._index(host)}")

    def heal(self, host: Host) -> None:
        """Reconnect a host that :meth:`cut` cut off."""
        self._control(f"heal {self._index(host)}")

    def set_delay(self, host: Host, extra_ms: float) -> None:
        """Delay every frame from or to ``host`` by ``extra_ms`` more, one way (0 restores the link)."""
        if extra_ms < 0:
            raise StratusError(f"DelayedNetwork: extra delay must be 0 or more, got {extra_ms}")
        self._control(f"delay {self._index(host)} {extra_ms!r}")

    def _index(self, host: Host) -> int:
        if host not in self.hosts:
            raise StratusError(f"DelayedNetwork: {host.name!r} is not a host of this network (is it set up?)")
        return self.hosts.index(host)

    def _control(self, line: str) -> None:
        forwarder = self._forwarder
        if forwarder is None or forwarder.stdin is None:
            raise StratusError("DelayedNetwork: the network is not set up")
        forwarder.stdin.write(line.encode() + b"\n")
        forwarder.stdin.flush()

    def popen(self, host: Host, command: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``command`` inside ``host``'s namespace; ``__exit__`` terminates it if it still runs."""
        process: subprocess.Popen[Any] = subprocess.Popen(self._in(host, command), **kwargs)
        with self._lock:
            self._children.append(process)
        return process

    def run(self, host: Host, command: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run ``command`` inside ``host``'s namespace to completion (``subprocess.run`` semantics)."""
        return subprocess.run(self._in(host, command), **kwargs)

    def _in(self, host: Host, command: Sequence[str]) -> list[str]:
        if host.name not in self._namespaces:
            raise StratusError(f"DelayedNetwork: {host.name!r} is not a host of this network (is it set up?)")
        return ["ip", "netns", "exec", host.name, *command]

    def _build(self) -> None:
        self._reserve_namespaces()
        taps: list[int] = []
        try:
            macs: list[str] = []
            for i, name in enumerate(self._namespaces, start=1):
                fd, tap = _open_tap(self._prefix[:8] + "%d")
                taps.append(fd)
                mac = f"02:77:00:00:{i // 256:02x}:{i % 256:02x}"
                macs.append(mac)
                address = f"{_SUBNET}.{i}"
                # Moved and renamed in one message, so no two hosts' TAPs ever share a name in the root
                # namespace; the alias (the namespace name) marks it as ours should it ever come back.
                _ip("link", "set", "dev", tap, "netns", name, "name", INTERFACE)
                _ip_batch(
                    name,
                    [
                        f"link set dev {INTERFACE} address {mac} mtu {self.mtu} alias {name}",
                        f"link set dev {INTERFACE} addrgenmode none",  # no IPv6 chatter on the link
                        f"addr add {address}/{_PREFIX_LENGTH} dev {INTERFACE}",
                        f"link set dev {INTERFACE} up",
                        "link set dev lo up",
                    ],
                )
                self.hosts.append(Host(name=name, address=address))
            # Static neighbours: no ARP round trip (two one-way delays) before each first connection.
            for host in self.hosts:
                _ip_batch(
                    host.name,
                    [
                        f"neigh replace {other.address} lladdr {mac} dev {INTERFACE} nud permanent"
                        for other, mac in zip(self.hosts, macs, strict=True)
                        if other is not host
                    ],
                )
            self._forwarder = self._start_forwarder(taps, macs)
        finally:
            for fd in taps:
                os.close(fd)  # the forwarder holds its own copies; ours would keep the TAPs alive

    def _reserve_namespaces(self) -> None:
        """Create ``hosts`` namespaces under names no one else uses, recording each as it is made."""
        pid = os.getpid()
        while True:
            number = next(_instances)
            names = [f"{self._prefix}-{pid}-{number}-h{i}" for i in range(1, self._count + 1)]
            if any((_NETNS_DIR / name).exists() for name in names):
                continue  # left by an earlier process with our pid: not ours to touch
            for name in names:
                result = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
                if result.returncode != 0:
                    raise StratusError(
                        f"cannot create network namespace {name!r}: `ip netns add` said "
                        f"{result.stderr.strip() or result.returncode}"
                    )
                self._namespaces.append(name)
            return

    def _start_forwarder(self, taps: list[int], macs: list[str]) -> subprocess.Popen[bytes]:
        """Start the forwarder on the TAP descriptors and wait until it polls them."""
        env = dict(os.environ)
        source = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
        command = [
            sys.executable,
            "-P",
            str(Path(__file__).resolve()),
            "--forward",
            "--delay-ms",
            repr(self.one_way_delay_ms),
            "--fds",
            ",".join(str(fd) for fd in taps),
            "--macs",
            ",".join(macs),
            "--namespaces",
            ",".join(self._namespaces),
        ]
        forwarder = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=taps,
            env=env,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop it in order
        )
        assert forwarder.stdout is not None
        ready, _, _ = select.select([forwarder.stdout], [], [], 30.0)
        line = forwarder.stdout.readline() if ready else b""
        if line != _READY:
            self._forwarder = forwarder  # so close() stops it
            forwarder.kill()
            output = line + forwarder.stdout.read()
            raise StratusError(
                "the WAN forwarder did not start: "
                + (output.decode(errors="replace").strip() or "no output within 30 s")
            )
        return forwarder


def enter(host: Host) -> None:
    """Move the calling thread (only it, and the threads it starts later) into ``host``'s namespace.

    What a client in that site does: connect to the other hosts' addresses over the delayed link. The
    namespace is per thread in Linux, so the rest of the process stays where it was.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(_NETNS_DIR / host.name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise StratusError(f"cannot enter network namespace {host.name!r}: {os.strerror(error)}")
    finally:
        os.close(fd)


def _open_tap(pattern: str) -> tuple[int, str]:
    """A new non-persistent TAP device (deleted when its last descriptor closes): (descriptor, name).

    ``pattern`` may contain ``%d``, which the kernel replaces to make the name unique.
    """
    fd = os.open(_TUN, os.O_RDWR | os.O_CLOEXEC)
    try:
        request = struct.pack("16sH22x", pattern.encode(), _IFF_TAP | _IFF_NO_PI)
        answer = fcntl.ioctl(fd, _TUNSETIFF, request)
    except OSError:
        os.close(fd)
        raise
    return fd, answer[:16].split(b"\0", 1)[0].decode()


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise StratusError(f"`ip {' '.join(args)}` failed: {result.stderr.strip() or result.returncode}")


def _ip_batch(namespace: str, commands: list[str]) -> None:
    """Several ``ip`` commands inside ``namespace`` in one process (each ``ip`` start costs milliseconds)."""
    if not commands:
        return
    script = "\n".join(commands) + "\n"
    result = subprocess.run(
        ["ip", "-n", namespace, "-batch", "-"], input=script, capture_output=True, text=True
    )
    if result.returncode != 0:
        detail = result.stderr.strip() or f"exit code {result.returncode}"
        raise StratusError(f"configuring network namespace {namespace!r} failed: {detail}")


def _pids_in(namespace: str) -> list[int]:
    """Processes whose network namespace is ``namespace`` (what ``ip netns pids`` prints, without a fork)."""
    try:
        target = os.stat(_NETNS_DIR / namespace)
    except OSError:
        return []
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            pids.append(int(entry.name))
    return pids


def _remove_namespaces(namespaces: Sequence[str]) -> None:
    """Kill what still runs in ``namespaces`` and delete them; names that are already gone are skipped."""
    for name in namespaces:
        if not (_NETNS_DIR / name).exists():
            continue
        # A namespace lives on, unnamed, while a process is in it; the processes are ours (started there).
        for _ in range(50):
            pids = _pids_in(name)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


class _Link:
    """What the parent asked of each host's link at run time: cut off, or extra one-way delay (seconds)."""

    def __init__(self, taps: list[int]) -> None:
        self.taps = taps
        self.cut: set[int] = set()
        self.extra: dict[int, float] = {}
        self._partial = b""

    def apply(self, data: bytes) -> None:
        """Apply complete command lines: ``cut I``, ``heal I``, ``delay I MS`` (I: the host's index)."""
        self._partial += data
        *lines, self._partial = self._partial.split(b"\n")
        for line in lines:
            words = line.decode().split()
            fd = self.taps[int(words[1])]
            if words[0] == "cut":
                self.cut.add(fd)
            elif words[0] == "heal":
                self.cut.discard(fd)
            elif words[0] == "delay":
                self.extra[fd] = float(words[2]) / 1000.0


def _forward(
    taps: list[int], macs: list[bytes], delay_s: float, stop: Sequence[int], control: int | None = None
) -> None:
    """Switch frames between ``taps``, each held ``delay_s``, until a ``stop`` descriptor becomes readable.

    A learning switch (seeded with the hosts' MACs) sends unicast to one TAP and floods the rest. The
    loop reads in bursts, stamps each frame with its release time and writes out everything due; epoll
    timeouts round up to the millisecond, so a frame is never early and at most about 1 ms late.
    ``control`` (the parent's pipe) carries :class:`_Link` commands; its end of file stops the switch.
    A host's extra delay applies to frames from and to it; frames from or to a cut host are dropped.
    """
    poller = select.epoll()
    for fd in taps:
        os.set_blocking(fd, False)
        poller.register(fd, select.EPOLLIN)
    for fd in (*stop, *(() if control is None else (control,))):
        poller.register(fd, select.EPOLLIN)
    link = _Link(taps)
    table = dict(zip(macs, taps, strict=True))
    others = {fd: tuple(o for o in taps if o != fd) for fd in taps}
    # Release time, arrival order, destinations, frame: one delay for all keeps arrival order; per-host
    # extra delays need the heap, and the arrival counter keeps frames between two hosts in order.
    pending: list[tuple[float, int, tuple[int, ...], bytes]] = []
    arrivals = itertools.count()
    read, clock = os.read, time.monotonic
    sys.stdout.buffer.write(_READY)
    sys.stdout.flush()
    while True:
        timeout = max(0.0, pending[0][0] - clock()) if pending else None
        for fd, _ in poller.poll(timeout):
            if fd == control:
                data = read(fd, 4096)
                if not data:
                    return
                link.apply(data)
                continue
            if fd in stop:
                return
            for _ in range(_BURST):
                try:
                    frame = read(fd, 65536)
                except BlockingIOError:
                    break
                destination = frame[:6]
                table[frame[6:12]] = fd
                port = table.get(destination)
                if destination[0] & 1 or port is None:
                    out = others[fd]  # broadcast, multicast or not yet learned: flood
                elif port != fd:
                    out = (port,)
                else:
                    continue
                if link.cut:
                    out = () if fd in link.cut else tuple(o for o in out if o not in link.cut)
                    if not out:
                        continue  # the frame is lost on a cut link, as on a pulled cable
                delay = delay_s
                if link.extra:
                    delay += link.extra.get(fd, 0.0) + max(link.extra.get(o, 0.0) for o in out)
                if delay:
                    heapq.heappush(pending, (clock() + delay, next(arrivals), out, frame))
                else:
                    _send(out, frame)
        now = clock()
        while pending and pending[0][0] <= now:
            _, _, out, frame = heapq.heappop(pending)
            _send(out, frame)


def _send(out: tuple[int, ...], frame: bytes) -> None:
    for fd in out:
        # A full or downed interface drops the frame, as a real link would.
        with contextlib.suppress(OSError):
            os.write(fd, frame)


def _forwarder_main(args: argparse.Namespace) -> int:
    """The forwarder process: switch frames until the parent closes our stdin, dies, or sends SIGTERM.

    Either way (including the parent dying without cleaning up) it removes the parent's namespaces, so a
    killed test leaves nothing behind.
    """
    namespaces = [n for n in args.namespaces.split(",") if n]
    # SIGTERM only wakes the loop (through the wakeup pipe), so it can never cut the teardown short.
    wakeup, wakeup_writer = os.pipe()
    os.set_blocking(wakeup_writer, False)
    signal.set_wakeup_fd(wakeup_writer)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _forward(
            [int(fd) for fd in args.fds.split(",")],
            [bytes.fromhex(mac.replace(":", "")) for mac in args.macs.split(",")],
            args.delay_ms / 1000.0,
            (wakeup,),
            # The parent writes link commands to our stdin; end of file means it closed it or died.
            control=sys.stdin.fileno(),
        )
    finally:
        _remove_namespaces(namespaces)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stratus.sandbox.wan``: set up a delayed network, print its hosts, wait for Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m stratus.sandbox.wan",
        description="Network namespaces joined by a link with a fixed one-way delay (needs root).",
    )
    parser.add_argument("--hosts", type=int, default=2, help="number of hosts (namespaces), default 2")
    parser.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay in ms, default 10")
    parser.add_argument(
        "--mtu", type=int, default=_DEFAULT_MTU, help=f"interface MTU, default {_DEFAULT_MTU}"
    )
    parser.add_argument("--prefix", default="strwan", help="namespace name prefix, default strwan")
    parser.add_argument("--json", action="store_true", help="print the hosts as one JSON line")
    parser.add_argument("--forward", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fds", default="", help=argparse.SUPPRESS)
    parser.add_argument("--macs", default="", help=argparse.SUPPRESS)
    parser.add_argument("--namespaces", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.forward:
        return _forwarder_main(args)

    def stop(signum: int, frame: FrameType | None) -> None:
        # Once: a second Ctrl-C must not cut the teardown short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    # Both explicitly: a shell starts background jobs with SIGINT ignored, and Python keeps it ignored.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    ready = False
    try:
        with DelayedNetwork(args.hosts, args.delay_ms, prefix=args.prefix, mtu=args.mtu) as net:
            ready = True  # before printing: whoever reads the hosts may interrupt at once
            if args.json:
                hosts = [{"name": h.name, "address": h.address} for h in net.hosts]
                print(json.dumps({"hosts": hosts, "one_way_delay_ms": args.delay_ms, "interface": INTERFACE}))
            else:
                for host in net.hosts:
                    print(f"{host.name}\t{host.address}")
                print(
                    f"one-way delay {args.delay_ms:g} ms (round trip ≥ {2 * args.delay_ms:g} ms), interface "
                    f"{INTERFACE}, MTU {args.mtu}.\nA shell on the first host: ip netns exec "
                    f"{net.hosts[0].name} bash\nCtrl-C tears it down."
                )
            sys.stdout.flush()
            threading.Event().wait()
    except KeyboardInterrupt:
        return 0 if ready else 130
    except StratusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
