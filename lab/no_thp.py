"""Start a daemon without transparent huge pages for it and every process it starts.

QEMU asks for huge pages on guest RAM (``madvise(MADV_HUGEPAGE)``). Under TCG that buys
nothing and costs twice: the first touch of each 2 MiB region (a restore from the
template, a ``loadvm``) makes the kernel zero a whole huge page, and a region the guest
touched once stays resident whole (a 256 MiB micro guest kept ~120 MiB of huge pages,
most of them empty). ``prctl(PR_SET_THP_DISABLE)`` turns huge pages off for the calling
process; it is inherited across fork and kept across execve, so libvirtd started through
:func:`prefix` gives it to every QEMU it starts.

Only daemons the lab starts itself (the sandbox, a namespace host) are started so: a
user's own libvirtd (a KVM host, where huge pages help) is left as it is.
"""

from __future__ import annotations

import shlex
import sys

#: linux/prctl.h
PR_SET_THP_DISABLE = 41

_EXEC = ("import ctypes, os, sys\n"
         "libc = ctypes.CDLL(None, use_errno=True)\n"
         f"if libc.prctl({PR_SET_THP_DISABLE}, 1, 0, 0, 0) != 0:\n"
         "    sys.exit('prctl(PR_SET_THP_DISABLE): ' + os.strerror(ctypes.get_errno()))\n"
         "try:\n"
         "    os.execvp(sys.argv[1], sys.argv[1:])\n"
         "except OSError as exc:\n"
         "    sys.stderr.write(f'{sys.argv[1]}: {exc.strerror}\\n')\n"
         "    sys.exit(127)\n")


def argv(command: list[str]) -> list[str]:
    """``command`` run with transparent huge pages off (for it and its children)."""
    return [sys.executable, "-c", _EXEC, *command]


def prefix() -> str:
    """The same as a shell-quoted prefix for a command line in a shell script."""
    return shlex.join(argv([])) + " "
