"""Build one mutant of a twin for a guest's kernel, once per (sources, patch) state.

The twin's directory (``drivers/<driver>/linux``) and the shared headers are copied
to ``var/drivers/linux/<release>/mutants/<name>/src``, the mutant's patch applied
there with ``patch -p1``, and the modules of that directory built by kbuild with
``W=1`` (a warning fails the build, as for the twins). A stamp over the twins'
sources and the patch says when the build is current; a file lock makes parallel
xdist workers build once. Nothing under ``drivers/`` is ever modified.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from filelock import FileLock, Timeout

from lab.drivers import DRIVERS_DIR
from lab.errors import LabFailure
from lab.guests.twins_build import BUILD_TIMEOUT_S, OUT, STAMP, sources_digest
from lab.inventory import write_text_atomic
from lab.selftest.mutants import Mutant

#: headers every twin includes (as drivers/linux.mk copies them)
_SHARED_HEADERS = ("common/linux/*.h", "common/*.h")


def variant_dir(release: str, mutant: Mutant) -> Path:
    """Where the mutant's modules for ``release`` are (or will be) built."""
    return OUT / release / "mutants" / mutant.name


def _digest(mutant: Mutant) -> str:
    h = hashlib.sha256(sources_digest().encode())
    h.update(mutant.patch.read_bytes())
    return h.hexdigest()


def _current(folder: Path, digest: str) -> bool:
    stamp = folder / STAMP
    return stamp.exists() and stamp.read_text().strip() == digest


def ensure_variant_built(release: str, mutant: Mutant) -> Path:
    """The folder holding the mutant's ``.ko`` files for ``release`` (built if stale)."""
    folder = variant_dir(release, mutant)
    digest = _digest(mutant)
    if _current(folder, digest):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder.parent / f".{mutant.name}.lock"))
    try:
        with lock.acquire(timeout=BUILD_TIMEOUT_S):
            if not _current(folder, digest):
                _build(release, mutant, folder, digest)
    except Timeout:
        raise LabFailure(f"another process held the build lock of mutant {mutant.name} for "
                         f"{BUILD_TIMEOUT_S:.0f}s", hint="look for a stuck build") from None
    return folder


def _run(argv: list[str], cwd: Path, what: str) -> str:
    try:
        res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                             timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LabFailure(f"{what} took over {BUILD_TIMEOUT_S:.0f}s") from None
    out = res.stdout + res.stderr
    if res.returncode != 0:
        raise LabFailure(f"{what} failed: {out.strip()[-400:]}")
    return out


def _build(release: str, mutant: Mutant, folder: Path, digest: str) -> None:
    kdir = Path("/usr/src") / f"linux-headers-{release}"
    if not (kdir / "Makefile").exists():
        raise LabFailure(f"no kernel headers for {release}: mutant {mutant.name} cannot be built",
                         hint=f"apt-get install linux-headers-{release}")
    shutil.rmtree(folder, ignore_errors=True)
    src = folder / "src"
    shutil.copytree(mutant.patch.parent.parent, src,
                    ignore=shutil.ignore_patterns("mutants", "*.o", "*.ko", ".*"))
    for pattern in _SHARED_HEADERS:
        for header in DRIVERS_DIR.glob(pattern):
            shutil.copy2(header, src / header.name)
    _run(["patch", "-p1", "--batch", "--forward", "-i", str(mutant.patch)], src,
         f"applying mutant {mutant.name}")
    log = _run(["make", "-s", "-C", str(kdir), f"M={src}", "W=1", "modules"], src,
               f"building mutant {mutant.name} for {release}")
    if "warning" in log.lower():
        raise LabFailure(f"mutant {mutant.name} builds with warnings: {log.strip()[-400:]}",
                         hint=f"fix the patch {mutant.patch}")
    for ko in src.glob("*.ko"):
        shutil.copy2(ko, folder / ko.name)
    write_text_atomic(folder / STAMP, digest + "\n")
