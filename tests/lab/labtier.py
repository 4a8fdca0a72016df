"""What every lab-tier test module shares: the real CLI and the host precondition."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: what every lab-tier test needs on the host (tests add their own tools)
BASE_TOOLS = ("libvirtd", "qemu-system-x86_64", "ip", "busybox", "dropbear")


def lab_cli(config: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the real `lab` CLI (python -m lab) and echo its output into the test log."""
    res = subprocess.run([sys.executable, "-m", "lab", "-c", str(config), *args],
                         capture_output=True, text=True, timeout=timeout, cwd=REPO)
    sys.stdout.write(f"$ lab {' '.join(args)} -> {res.returncode}\n{res.stdout}{res.stderr}")
    return res


def host_cannot_run(*tools: str) -> str | None:
    """Why this host cannot run the lab tier (root, the tools), or None."""
    if os.geteuid() != 0:
        return "the lab tier needs root (sandboxed libvirtd, network namespace)"
    for tool in (*BASE_TOOLS, *tools):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is not installed (run `make setup`)"
    return None


def require_lab_host(*tools: str) -> None:
    """Skip when the host cannot run the lab tier; in CI that is a failure, never a skip."""
    reason = host_cannot_run(*tools)
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"lab tier cannot run in CI: {reason}")
        pytest.skip(reason)


def seed_cache(state: Path, *sources: Path) -> Path:
    """``state``/cache, hard-linked from the first of ``sources`` (default: the main
    lab's var/cache) that exists when ``state`` has none yet: no package download."""
    dest = state / "cache"
    for seed in sources or (REPO / "var" / "cache",):
        if seed.is_dir() and not dest.exists():
            state.mkdir(parents=True, exist_ok=True)
            shutil.copytree(seed, dest, copy_function=os.link)
    return dest
