"""Run a command on a pseudo-terminal, as a user at a terminal would (the live views)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_pty(argv: Sequence[str], cwd: Path, timeout: float, width: int = 120
               ) -> tuple[int, str]:
    """``argv``'s exit status and everything it wrote to the terminal (escapes removed)."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items()  # not an outer pytest's (xdist) worker
           if not k.startswith(("PYTEST_XDIST_", "PYTEST_CURRENT_TEST", "LAB_PROGRESS"))}
    env.update(TERM="xterm-256color", COLUMNS=str(width), LINES="40")
    proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                            env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        rc = proc.wait(timeout=max(deadline - time.monotonic(), 1.0))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return rc, _ESCAPE.sub("", b"".join(chunks).decode(errors="replace"))
