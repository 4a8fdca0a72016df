"""Network namespaces: create, enter (setns) and list the processes inside.

The lab's sandbox namespace holds libvirtd, the guests' bridges and every
QEMU; the lab's host-side code enters it so that guest traffic never leaves it.
"""

from __future__ import annotations

import ctypes
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.errors import LabFailure
from lab.hosttools import run_tool

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def ip(*args: str, timeout: float = 30) -> str:
    """Run `ip ARGS...`; a failure is a LabFailure naming the command."""
    return run_tool(["ip", *args], f"ip {' '.join(args)}", timeout=timeout)


def create(name: str) -> None:
    if not exists(name):
        ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")


def delete(name: str) -> None:
    if exists(name):
        ip("netns", "delete", name)


def links(name: str, kind: str | None = None) -> list[str]:
    """The names of namespace ``name``'s network devices (only veths: ``kind="veth"``);
    none when the namespace does not exist."""
    if not exists(name):
        return []
    args = ["-n", name, "-o", "link", "show", *(["type", kind] if kind else [])]
    # "7: dlh2c@if6: <BROADCAST,...> ...": the name ends at "@" (a pair's peer) or ":"
    return [line.split(":", 2)[1].strip().split("@", 1)[0]
            for line in ip(*args).splitlines() if line.count(":") >= 2]


def delete_link(name: str, dev: str, timeout: float = 10.0) -> bool:
    """Remove device ``dev`` from namespace ``name`` if it is there and return once it is
    gone (True when it was there). A veth whose peer's namespace was just deleted goes
    away by itself a moment later (the kernel cleans a deleted namespace up
    asynchronously): a delete that finds it already gone is no error; one that keeps
    failing while it is still listed is, after ``timeout``."""
    deadline = time.monotonic() + timeout
    was_there = False
    while dev in links(name):
        was_there = True
        try:
            ip("-n", name, "link", "del", dev)
        except LabFailure:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)  # gone by now, or going: look again
    return was_there


def pids(name: str) -> list[int]:
    """PIDs of every process whose network namespace is ``name``."""
    if not exists(name):
        return []
    return [int(p) for p in ip("netns", "pids", name).split()]


def _inode(path: str) -> int:
    return os.stat(path).st_ino


def current_is(name: str) -> bool:
    """True when this thread already runs inside namespace ``name``."""
    return exists(name) and _inode("/proc/thread-self/ns/net") == _inode(str(NETNS_DIR / name))


def enter(name: str) -> None:
    """Move the calling thread into network namespace ``name``.

    setns(2) changes only the calling thread; threads it starts afterwards
    inherit the namespace, threads started before keep theirs. Sockets belong to
    the namespace of the thread that created them, which is why
    :func:`lab.guest.check_route` runs in the thread that opens the connection.
    """
    if current_is(name):
        return
    fd = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        _setns(fd, name)
    finally:
        os.close(fd)


def _setns(fd: int, name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise LabFailure(f"setns into {name} failed: {os.strerror(err)}",
                         hint="the lab's sandbox needs root")


#: the host's own network namespace (PID 1's), where package downloads must run
HOST_NETNS = "/proc/1/ns/net"


def on_host_network(argv: list[str]) -> list[str]:
    """``argv``, run in the host's network namespace when this thread is in another one
    (a process that entered a lab's sandbox: apt must still reach its mirror)."""
    try:
        if _inode("/proc/thread-self/ns/net") == _inode(HOST_NETNS):
            return argv
    except OSError:  # PID 1's namespace is not ours to read: stay where we are
        return argv
    return ["nsenter", f"--net={HOST_NETNS}", "--", *argv]


@contextmanager
def inside(name: str) -> Iterator[None]:
    """The calling thread inside ``name`` for the block, then back where it was.

    For short visits from a process that must keep the host's network (a test
    session that later runs `lab up`, which downloads packages).
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        enter(name)
        try:
            yield
        finally:
            _setns(home, "the original network namespace")
    finally:
        os.close(home)


def has_interface(ifname: str) -> bool:
    """Whether ``ifname`` exists in this thread's network namespace."""
    try:
        socket.if_nametoindex(ifname)
    except OSError:
        return False
    return True
