"""Where a Wine process's threads are: winedbg's `bt all`, read into one line per thread.

When wskecho.sys hangs under Wine (its unload never returns), what explains it is where
each thread of the winedevice.exe that hosts it waits: in the driver (named from the
symbol twin the build links beside the stripped image, obj/wskecho.sym.sys), in Wine's
netio.sys or ntoskrnl.exe, or in the thread pool. Wine's own frames carry their function
names in winedbg's output; the driver's carry only `wskecho.sys (+0xRVA)`.
"""

from __future__ import annotations

import bisect
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pefile  # type: ignore[import-untyped]

_THREAD = re.compile(r"^Backtracing for thread (\w+) in process (\w+) \((.*)\):\s*$")
# "  5 0x000000021a1332 in wskecho.sys (+0x1332) (0x...)": a frame without a symbol.
_BARE = re.compile(r"^\s*(?:=>)?\s*\d+\s+0x[0-9a-f]+\s+in\s+(\S+)\s+\(\+0x([0-9a-f]+)\)")
# "  1 0x... RtlSleepConditionVariableCS+0x34(variable=...) [...sync.c:799] in ntdll (0x...)"
_NAMED = re.compile(r"^\s*(?:=>)?\s*\d+\s+0x[0-9a-f]+\s+([A-Za-z_][\w@.$]*)(?:\+0x[0-9a-f]+)?\(")
_MODULE = re.compile(r"\]?\s+in\s+(\S+)\s+\((?:0x)?[0-9a-f]+\)\s*$")
# Frames every thread has at its bottom: they say nothing about where it waits.
_BOTTOM = frozenset({"BaseThreadInitThunk", "__wine_pop_frame", "RtlUserThreadStart"})
_NM_TOOL = "x86_64-w64-mingw32-nm"


@dataclass(frozen=True)
class Thread:
    tid: str
    pid: str
    image: str
    frames: tuple[str, ...]  # innermost first: "function (module)" or "module+0xRVA"


def parse(text: str) -> list[Thread]:
    """Every thread of winedbg's `bt all` output, its frames innermost first."""
    threads: list[Thread] = []
    head: tuple[str, str, str] | None = None
    frames: list[str] = []
    for line in text.splitlines():
        m = _THREAD.match(line)
        if m:
            if head:
                threads.append(Thread(*head, tuple(frames)))
            head, frames = (m.group(1), m.group(2), m.group(3)), []
        elif head and (frame := _frame(line)):
            frames.append(frame)
    if head:
        threads.append(Thread(*head, tuple(frames)))
    return threads


def _frame(line: str) -> str | None:
    if m := _BARE.match(line):
        return f"{m.group(1)}+0x{m.group(2)}"
    if m := _NAMED.match(line):
        module = _MODULE.search(line)
        return f"{m.group(1)} ({module.group(1)})" if module else m.group(1)
    return None


class Symbols:
    """Static and global function symbols of an unstripped PE image (mingw nm), found by
    the RVA of a frame (the image's preferred base, read from its header, added)."""

    def __init__(self, image: Path) -> None:
        self.base = 0
        self._addrs: list[int] = []
        self._names: list[str] = []
        nm = shutil.which(_NM_TOOL)
        if nm is None or not image.is_file():
            return
        pe = pefile.PE(str(image), fast_load=True)
        self.base = int(pe.OPTIONAL_HEADER.ImageBase)
        pe.close()
        out = subprocess.run([nm, "-n", str(image)], capture_output=True, text=True,
                             timeout=30, check=False).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "tT" and not parts[2].startswith((".", "__")):
                self._addrs.append(int(parts[0], 16))
                self._names.append(parts[2])

    def name(self, rva: int) -> str | None:
        i = bisect.bisect_right(self._addrs, self.base + rva) - 1
        if i < 0:
            return None
        return f"{self._names[i]}+{self.base + rva - self._addrs[i]:#x}"


def summary(text: str, image: str, symbols: Symbols) -> list[str]:
    """One line per thread of the process(es) that have `image` on a stack: the thread
    id and its frames innermost first (the driver's named from `symbols`)."""
    threads = parse(text)
    pids = {t.pid for t in threads if any(f.startswith(f"{image}+") for f in t.frames)}
    lines = []
    for t in threads:
        if t.pid not in pids:
            continue
        names = [_named(f, image, symbols) for f in t.frames if f.split(" ")[0] not in _BOTTOM]
        lines.append(f"thread {t.tid}: " + " < ".join(names))
    return lines


def _named(frame: str, image: str, symbols: Symbols) -> str:
    if frame.startswith(f"{image}+0x"):
        name = symbols.name(int(frame.split("+0x")[1], 16))
        return f"{image}!{name}" if name else frame
    return frame
