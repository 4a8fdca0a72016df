"""The CLI's last line of defence: every failure becomes one line on stderr.

A :class:`~lab.errors.LabError` is printed as its summary (plus its ``fix:``
hint). Anything else is a bug in the lab: the user gets one line naming the
exception and a log file holding the full traceback (written atomically, mode
0600, in the lab's state directory or else the temporary directory), and the
process exits with :data:`EX_SOFTWARE`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from lab.errors import LabError

#: sysexits.h EX_SOFTWARE: internal software error.
EX_SOFTWARE = 70
EX_USAGE_ERROR = 1
EX_INTERRUPTED = 130
EX_BROKEN_PIPE = 141
_MAX_MESSAGE = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """``text`` on a single terminal-safe line (lines joined, control characters shown)."""
    joined = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], joined)


def report_lab_error(exc: LabError) -> None:
    print(f"lab: {exc.kind}: {one_line(exc.summary)}", file=sys.stderr)
    if exc.hint:
        print(f"  fix: {one_line(exc.hint)}", file=sys.stderr)


def write_crash_log(text: str, dirs: Iterable[Path]) -> Path | None:
    """Write ``text`` to a new 0600 file in the first writable directory; None if none is."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for directory in dirs:
        try:
            fd, tmp = tempfile.mkstemp(prefix=".lab-crash-", suffix=".tmp", dir=directory)
        except OSError:
            continue
        final = Path(directory) / f"lab-crash-{stamp}-{os.getpid()}.log"
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError:
            with_suppressed_unlink(tmp)
            continue
        return final
    return None


def with_suppressed_unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def report_internal_error(exc: BaseException, log_dirs: Iterable[Path]) -> int:
    """One line naming ``exc`` and the log holding its traceback; returns EX_SOFTWARE."""
    details = "".join(traceback.format_exception(exc))
    header = (f"lab internal error at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC\n"
              f"argv: {sys.argv!r}\npython: {sys.version.split()[0]}\n\n")
    log = write_crash_log(header + details, log_dirs)
    message = one_line(str(exc))[:_MAX_MESSAGE] or "(no message)"
    where = str(log) if log is not None else "no log could be written"
    print(f"lab: internal error: {type(exc).__name__}: {message} (details: {where})",
          file=sys.stderr)
    return EX_SOFTWARE


def run_guarded(run: Callable[[], int], log_dirs: Callable[[], list[Path]]) -> int:
    """Run a CLI command; map every way it can fail to one line and an exit code."""
    try:
        return run()
    except LabError as exc:
        report_lab_error(exc)
        return EX_USAGE_ERROR
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return EX_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`lab config | head`): nothing left to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EX_BROKEN_PIPE
    except Exception as exc:  # the point of this handler
        try:
            dirs = log_dirs()
        except Exception:  # the config may be what is broken
            dirs = []
        return report_internal_error(exc, [*dirs, Path(tempfile.gettempdir())])
