"""A full disk under the lab's logs (issue 15): progress lines and the lease log are best
effort. The disk is a real full tmpfs in a private mount namespace (root only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lab.report import max_concurrency

REPO = Path(__file__).resolve().parents[2]
ENOSPC_TEXT = os.strerror(28)

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="a private mount namespace needs root and unshare")


def _on_full_tmpfs(tmp_path: Path, code: str,
                   free_pages: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (Python; ``FULL`` is the mount point) with a full 64 KiB tmpfs (but
    ``free_pages`` 4 KiB pages) on ``tmp_path / "full"`` that only its own mount
    namespace sees."""
    full = tmp_path / "full"
    full.mkdir()
    script = ('mount -t tmpfs -o size=64k dltest "$1" && '
              '(dd if=/dev/zero of="$1/.fill" bs=64k 2>/dev/null; true) && '
              f'truncate -s -{free_pages * 4096} "$1/.fill" && '
              'exec "$2" -c "$3"')
    prog = f"from pathlib import Path\nFULL = Path({str(full)!r})\n" + textwrap.dedent(code)
    return subprocess.run(["unshare", "-m", "--propagation", "private", "--", "sh", "-c",
                           script, "sh", str(full), sys.executable, prog],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


@needs_root
def test_progress_goes_on_when_its_log_cannot_be_written(tmp_path: Path) -> None:
    res = _on_full_tmpfs(tmp_path, """
        import sys
        from lab.progress import Progress
        log = FULL / "logs" / "lab.log"
        first = Progress(log=log, stream=sys.stdout)
        first("one")
        first("two", "vm1")
        Progress(log=log, stream=sys.stdout)("three")  # a second writer on the same log
        print("end")
    """)
    assert res.returncode == 0, res.stderr
    assert [ln.split("] ", 1)[1] for ln in res.stdout.splitlines()[:3]] == [
        "lab: one", "vm1: two", "lab: three"]
    assert res.stdout.splitlines()[-1] == "end"
    said = res.stderr.splitlines()
    assert len(said) == 1, res.stderr
    assert f"{tmp_path}/full/logs/lab.log" in said[0] and ENOSPC_TEXT in said[0]


@needs_root
def test_lease_log_on_a_full_disk_never_holds_the_lease(tmp_path: Path) -> None:
    res = _on_full_tmpfs(tmp_path, """
        from filelock import FileLock
        from lab.leases import Lease
        lease = Lease(FULL / "leases", ["vm1"], "gw0:t", 0)
        print(lease.acquire(5))
        lease.release()
        FileLock(str(FULL / "leases" / "vm1.lock")).acquire(timeout=0)  # free again
        print(Lease(FULL / "leases", ["vm1"], "gw1:t", 0).acquire(0))
    """)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["vm1", "vm1"]
    said = res.stderr.splitlines()
    assert len(said) == 1 and "leases.jsonl" in said[0] and ENOSPC_TEXT in said[0], said


def test_report_skips_a_lease_line_cut_by_a_full_disk(tmp_path: Path) -> None:
    log = tmp_path / "leases.jsonl"
    events = [{"t": 1.0, "event": "acquire", "vm": "vm1", "holder": "gw0:a", "pid": 1},
              {"t": 2.0, "event": "acquire", "vm": "vm2", "holder": "gw1:b", "pid": 2}]
    log.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"t": 3.0, "event": "rel')
    assert max_concurrency(log) == (2, ["gw0->vm1", "gw1->vm2"])


@needs_root
def test_keys_on_a_full_disk_leave_no_half_pair(tmp_path: Path) -> None:
    """Room for one small file only: the private key (whose presence marks the pair as
    made) is never left without its public line."""
    res = _on_full_tmpfs(tmp_path, """
        from lab.errors import LabFailure
        from lab.keys import ensure_keys
        try:
            ensure_keys(FULL / "keys")
        except (OSError, LabFailure) as exc:
            print("failed:", type(exc).__name__)
        print(sorted(p.name for p in (FULL / "keys").iterdir()
                     if not p.name.endswith(".tmp")))
    """, free_pages=1)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["failed: OSError", "['id_ed25519.pub']"], res.stdout


def test_keys_made_in_a_fresh_dir(tmp_path: Path) -> None:
    from lab.keys import ensure_keys

    made = ensure_keys(tmp_path / "keys")
    again = ensure_keys(tmp_path / "keys")
    assert made == again and made.client_public.startswith("ssh-ed25519 ")
    assert made.host_public.startswith("ssh-ed25519 ")
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == [
        "guest_host_ed25519.dropbear", "id_ed25519", "id_ed25519.pub"]
