"""What every lab-tier test module shares: the real CLI and the host precondition."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: A stand-in for the labtdi transport's L2 echo: answers every lab L2 echo request that
#: reaches interface argv[1] (the repository in argv[2]), built from lab.l2probe's
#: constants (those are checked against drivers/common/labl2echo.h by the unit tier).
L2_RESPONDER = """import socket, sys
sys.path.insert(0, sys.argv[2])
from lab import l2probe as p
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(p.ETHERTYPE))
s.bind((sys.argv[1], p.ETHERTYPE)); me = s.getsockname()[4][:6]
index = socket.if_nametoindex(sys.argv[1]); print("ready", flush=True)
while True:
    f = s.recv(2048)
    magic, ver, op, n, seq, _ = p.HEADER.unpack_from(f, p.ETH_HLEN)
    if (magic, ver, op) != (p.MAGIC, p.VERSION, p.OP_REQUEST) or f[:6] != me: continue
    body = f[p.ETH_HLEN + p.HEADER.size:p.ETH_HLEN + p.HEADER.size + n]
    s.send(f[6:12] + me + f[12:14] + p.HEADER.pack(p.MAGIC, 1, p.OP_REPLY, n, seq, index) + body)
"""

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
