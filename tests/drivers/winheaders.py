"""Compiling against (copies of) the Windows drivers' headers, for the layout tests:
a copy of the header tree that a test may change, a syntax-only mingw-w64 compile of a
small C file against it, and a labtdi.sys built from mutated sources through the real
make rule (drivers/windows.mk: LABTDI_SRC / WIN_EXTRA_CFLAGS)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADER_DIRS = (ROOT / "drivers" / "include", ROOT / "drivers" / "common")
LABTDI_C = ROOT / "drivers" / "labtdi" / "windows" / "labtdi.c"
CC = "x86_64-w64-mingw32-gcc"
#: The kernel code-generation defines of drivers/windows.mk (what the headers see).
KERNEL_FLAGS = ("-std=gnu11", "-ffreestanding", "-D_AMD64_", "-DWINVER=0x0A00",
                "-D_WIN32_WINNT=0x0A00", "-DNTDDI_VERSION=0x0A000000")
TIMEOUT_S = 300

Mutation = Callable[["SourceTree"], None]


class MutationMissed(AssertionError):
    """A mutation did not find the text it changes: the source moved on, fix the test."""


@dataclass(frozen=True)
class Compiled:
    returncode: int
    stderr: str


@dataclass(frozen=True)
class SourceTree:
    """A private copy of the Windows driver headers and labtdi.c, in one directory."""

    path: Path

    @classmethod
    def copy(cls, dest: Path) -> SourceTree:
        dest.mkdir(parents=True, exist_ok=True)
        for d in HEADER_DIRS:
            for h in d.glob("*.h"):
                shutil.copy2(h, dest / h.name)
        shutil.copy2(LABTDI_C, dest / LABTDI_C.name)
        return cls(dest)

    def replace(self, name: str, old: str, new: str) -> None:
        """Replaces every occurrence of ``old`` in file ``name``; it must occur."""
        f = self.path / name
        text = f.read_text()
        if old not in text:
            raise MutationMissed(f"{name}: {old!r} not found")
        f.write_text(text.replace(old, new))

    def compile(self, source: str) -> Compiled:
        """Syntax-only kernel-mode compile of ``source`` against this tree."""
        c = self.path / "probe_layout.c"
        c.write_text(source)
        r = subprocess.run([CC, *KERNEL_FLAGS, f"-I{self.path}", "-fsyntax-only", str(c)],
                           capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        return Compiled(r.returncode, r.stderr)


def build_labtdi(work: Path, mutate: Mutation) -> Path:
    """labtdi.sys built by drivers/windows.mk from a mutated copy of its sources."""
    tree = SourceTree.copy(work / "src")
    mutate(tree)
    out = work / "out"
    cmd = ["make", "-s", "-C", str(ROOT), f"PY={sys.executable}", f"WIN_OUT={out}",
           f"LABTDI_SRC={tree.path / LABTDI_C.name}", f"WIN_EXTRA_CFLAGS=-I{tree.path}",
           str(out / "labtdi.sys")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if r.returncode != 0:
        raise AssertionError(f"mutant build failed:\n{r.stdout}\n{r.stderr}")
    return out / "labtdi.sys"
