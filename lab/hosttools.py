"""Running the host's command-line tools with one error shape.

A missing tool, a failure and a timeout each become a LabFailure that names
what the lab was doing and the command, never a traceback.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from lab.errors import LabFailure


def run_tool(cmd: list[str], what: str, cwd: Path | None = None,
             timeout: float = 300) -> str:
    """Run ``cmd`` and return its stdout; ``what`` says what it was for."""
    try:
        out = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True,
                             timeout=timeout)
    except FileNotFoundError:
        raise LabFailure(f"{what}: {cmd[0]} is not installed",
                         hint="run `make setup` to install the lab's Debian packages") from None
    except subprocess.CalledProcessError as exc:
        raise LabFailure(f"{what} failed ({' '.join(cmd)}): {exc.stderr.strip()[-800:]}") from None
    except subprocess.TimeoutExpired:
        raise LabFailure(f"{what} did not finish within {timeout:.0f}s "
                         f"({' '.join(cmd)})") from None
    return out.stdout
