"""`lab console VM --follow`: the VM's serial console log, followed without a terminal.

The lab keeps every VM's serial console in a file (appended across boots), so a CI
log or a second shell can follow it like ``tail -f``: first the last ``lines`` lines,
then whatever QEMU appends, until ``seconds`` pass or Ctrl-C. A log that shrinks (a
lab re-created) is followed again from its start.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import BinaryIO

from lab.errors import LabFailure

POLL_S = 0.2
#: Bytes read back from the end to find the last lines.
TAIL_WINDOW = 64 * 1024


def tail_start(size: int, head: bytes, lines: int) -> int:
    """Offset in a file of ``size`` bytes ending with ``head`` where its last ``lines``
    lines begin (``head`` is the file's last ``len(head)`` bytes)."""
    if lines <= 0:
        return size
    body = head[:-1] if head.endswith(b"\n") else head
    cut = len(body)
    for _ in range(lines):
        cut = body.rfind(b"\n", 0, cut)
        if cut < 0:
            return size - len(head)
    return size - len(head) + cut + 1


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise LabFailure(f"console log {path} cannot be read ({exc.strerror})",
                         hint="is the lab up? `lab status` says which state dir it reads") from None


def follow(path: Path, out: BinaryIO, lines: int = 20, seconds: float | None = None) -> int:
    """Copy the log's last ``lines`` lines, then what is appended, to ``out``.

    Returns after ``seconds`` (None: until Ctrl-C) with the bytes written.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    written = 0
    with _open(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - TAIL_WINDOW))
        head = fh.read()
        fh.seek(tail_start(size, head, lines))
        try:
            while deadline is None or time.monotonic() < deadline:
                chunk = fh.read(65536)
                if chunk:
                    out.write(chunk)
                    out.flush()
                    written += len(chunk)
                    continue
                if os.stat(path).st_size < fh.tell():  # truncated or re-created
                    fh.seek(0)
                time.sleep(POLL_S if deadline is None
                           else max(0.0, min(POLL_S, deadline - time.monotonic())))
        except KeyboardInterrupt:
            pass
    return written
