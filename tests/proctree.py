"""A process and what it forked, read from /proc (test helper for signalling SSH servers)."""
from __future__ import annotations

from pathlib import Path


def children(pid: int) -> list[int]:
    """``pid``'s children; none once it has exited (its /proc entry may vanish mid-read)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants, parents first (a process that exits meanwhile is kept
    in the list: signalling it is the caller's ProcessLookupError to ignore)."""
    found = [pid]
    for each in found:  # grows while walking
        found += children(each)
    return found


def qemu_pid(domain: str) -> int | None:
    """The QEMU process running libvirt domain ``domain`` (libvirt names it in QEMU's
    ``-name guest=<domain>,...`` argument), read from /proc; None when none runs it."""
    mark = f"guest={domain},".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # it exited meanwhile
            continue
        if argv[0].endswith(b"qemu-system-x86_64") and any(a.startswith(mark) for a in argv):
            return int(proc.name)
    return None
