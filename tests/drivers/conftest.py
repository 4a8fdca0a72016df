"""Fixtures for the drivers tier: build the Windows drivers once per session."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "drivers" / "windows"
ARTIFACTS = ("wskecho.sys", "labtdi.sys", "labtdi.inf", "labtdi.cat", "labctl.exe", "BUILD.json",
             "obj/wskecho.sym.sys")
BUILD_TIMEOUT = 600


def _build() -> None:
    for tool in ("x86_64-w64-mingw32-gcc", "x86_64-w64-mingw32-dlltool", "osslsigncode"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run `make setup` (drivers/apt-packages.txt)")
    steps = [
        ["make", "-C", str(ROOT), f"PY={sys.executable}", "drivers-windows-build"],
        [sys.executable, str(ROOT / "drivers/windows/tools/winbuild.py"), "all", "--out", str(OUT)],
    ]
    for cmd in steps:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
        if r.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")


@pytest.fixture(scope="session")
def windows_build() -> Path:
    """var/drivers/windows with every artifact built, checked and signed."""
    OUT.mkdir(parents=True, exist_ok=True)
    with FileLock(str(OUT / ".build.lock"), timeout=BUILD_TIMEOUT):  # xdist workers build once
        if not all((OUT / a).exists() for a in ARTIFACTS):
            _build()
    return OUT
