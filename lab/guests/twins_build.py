"""The Linux twins built on demand for a guest's kernel release, once per source state.

Every path that deploys a twin (`make lab`, `make lab-up` + pytest, pytest with
``--lab-config``) gets a build matching the guest's `uname -r` and the current
sources: ``var/drivers/linux/<release>/`` carries a stamp with the digest of every
source file; a missing or stale stamp rebuilds through the one recipe
(`make drivers-linux`), under a file lock so parallel xdist workers build once.

    python -m lab.guests.twins_build stamp <release>   # what `make drivers-linux` runs last
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from filelock import FileLock, Timeout

from lab.drivers import DRIVERS_DIR, REPO_ROOT
from lab.errors import LabFailure
from lab.inventory import write_text_atomic

OUT = REPO_ROOT / "var" / "drivers" / "linux"
STAMP = "sources.sha256"
#: the twins' sources (module sources and the headers they include)
SOURCE_GLOBS = ("wskecho/linux/*", "labtdi/linux/*", "common/linux/*.h", "common/*.h")
#: a cold kbuild of both modules on 2 cores takes about a minute under load
BUILD_TIMEOUT_S = 600.0


def sources_digest() -> str:
    """SHA-256 over the twins' source files (names and contents)."""
    h = hashlib.sha256()
    for pattern in SOURCE_GLOBS:
        for path in sorted(DRIVERS_DIR.glob(pattern)):
            if path.is_file():
                h.update(str(path.relative_to(DRIVERS_DIR)).encode() + b"\0")
                h.update(path.read_bytes())
    return h.hexdigest()


def _current(release: str, modules: tuple[str, ...], digest: str) -> bool:
    folder = OUT / release
    stamp = folder / STAMP
    return (stamp.exists() and stamp.read_text().strip() == digest
            and all((folder / f"{m}.ko").exists() for m in modules))


def write_stamp(release: str) -> None:
    """Record that ``var/drivers/linux/<release>`` was built from today's sources."""
    write_text_atomic(OUT / release / STAMP, sources_digest() + "\n")


def ensure_built(release: str, modules: tuple[str, ...]) -> Path:
    """``var/drivers/linux/<release>/`` with ``modules`` built from the current sources."""
    digest = sources_digest()
    if _current(release, modules, digest):
        return OUT / release
    if not (Path("/usr/src") / f"linux-headers-{release}" / "Makefile").exists():
        raise LabFailure(f"the guest runs kernel {release}, and its headers are not installed "
                         "on this host: the twins cannot be built for it",
                         hint=f"apt-get install linux-headers-{release} (`make setup` installs "
                              "the headers of the configured kernel_package)")
    OUT.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(OUT / f".build-{release}.lock"))
    try:
        with lock.acquire(timeout=BUILD_TIMEOUT_S):
            if not _current(release, modules, digest):  # another worker may have built it
                _make(release)
    except Timeout:
        raise LabFailure(f"another process held the twins' build lock for {release} for "
                         f"{BUILD_TIMEOUT_S:.0f}s", hint=f"look for a stuck build; the lock is "
                         f"{OUT / f'.build-{release}.lock'}") from None
    return OUT / release


def _make(release: str) -> None:
    cmd = ["make", "--no-print-directory", "-C", str(REPO_ROOT), "drivers-linux",
           f"LINUX_TWINS_ABI={release}", f"PY={sys.executable}"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LabFailure(f"building the twins for {release} took over "
                         f"{BUILD_TIMEOUT_S:.0f}s", hint="run `make drivers-linux` by hand "
                         "to see where it stops") from None
    if res.returncode != 0:
        raise LabFailure(f"building the twins for {release} failed: "
                         f"{(res.stderr or res.stdout).strip()[-400:]}",
                         hint=f"run `make drivers-linux LINUX_TWINS_ABI={release}`")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "stamp":
        print("usage: python -m lab.guests.twins_build stamp <kernel release>", file=sys.stderr)
        return 2
    write_stamp(argv[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
