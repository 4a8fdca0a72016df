"""Where libvirtd should start so that it trusts its cache of QEMU's capabilities.

libvirt 9.0 keeps CPUID leaf 0x1f in a capabilities file's host CPU data, and its EDX
is the x2APIC ID of the CPU that ran the probe: a libvirtd whose QEMU driver starts on
another CPU finds the file outdated ("host CPUID changed") and probes QEMU again (about
4 s here). So the lab's libvirtds (the sandbox's, a namespace host's) start pinned to
the probing CPU (:func:`probing_cpu`) and get every CPU back once they answer
(:func:`unpin`).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from lab.hosttools import run_tool

#: libvirt's cache of QEMU's probed capabilities, as the machine's libvirtd keeps it
#: (the sandbox's libvirtd shares the machine's /var/cache/libvirt)
QEMU_CAPS_CACHE = Path("/var/cache/libvirt/qemu/capabilities")
CAPS_FIELD = re.compile(r"<(emulator|qemuctime)>([^<]*)</\1>")
_MAX_LEAF = re.compile(r"<cpuid eax_in='0x00000000' ecx_in='0x00000000' eax='(0x[0-9a-f]+)'")
_X2APIC = re.compile(r"<cpuid eax_in='0x0000001f' ecx_in='0x00000000' [^>]*edx='(0x[0-9a-f]+)'")
#: the emulator the lab's guests run (its capabilities decide where libvirtd starts)
EMULATOR = "qemu-system-x86_64"


def probing_cpu(cache: Path, emulator: str = EMULATOR) -> int | None:
    """The CPU this machine's libvirt probed ``emulator``'s cached capabilities on, when
    it matters (their CPU data has the x2APIC leaf; an all-zero leaf is left out: x2APIC
    ID 0); None when it does not, or no such CPU is ours to use."""
    for cached in sorted(cache.glob("*.xml")):
        try:
            text = cached.read_text(errors="replace")
        except OSError:
            continue
        fields = dict(CAPS_FIELD.findall(text[:4096]))
        if Path(fields.get("emulator", "")).name != emulator:
            continue
        top, apic = _MAX_LEAF.search(text), _X2APIC.search(text)
        if top is None or int(top.group(1), 16) < 0x1F:
            return None
        return _cpu_of(int(apic.group(1), 16) if apic else 0)
    return None


def _cpu_of(apic_id: int) -> int | None:
    """The CPU number with x2APIC ID ``apic_id`` (/proc/cpuinfo), if this process may use it."""
    cpu: int | None = None
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            cpu = int(value)
        elif key == "apicid" and int(value) == apic_id:
            return cpu if cpu in os.sched_getaffinity(0) else None
    return None


def unpin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` may run on ``cpus`` again (threads started meanwhile by a
    still pinned one are found on the next pass)."""
    for _ in range(5):
        pinned = []
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:  # it has exited: whoever waits for it says so
            return
        for task in tasks:
            with contextlib.suppress(OSError, ValueError):  # a thread that ended
                if os.sched_getaffinity(int(task.name)) != cpus:
                    pinned.append(int(task.name))
                    os.sched_setaffinity(int(task.name), cpus)
        if not pinned:
            return


def release_when_serving(uri: str, pid: int, what: str, timeout: float) -> None:
    """Once the libvirtd at ``uri`` serves a connection (its drivers are up and have
    read the cache), every thread of ``pid`` may run on every CPU of ours again."""
    run_tool(["virsh", "-c", uri, "version"], f"asking {what} for its version",
             timeout=timeout)
    unpin(pid, os.sched_getaffinity(0))
