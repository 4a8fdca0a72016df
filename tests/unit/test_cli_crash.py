"""The CLI's top-level handler: an unexpected exception is one line, exit 70, and a 0600 log.

The handler is exercised in a real process (its stderr, exit code and files are
what a user sees); the failure is a callable that raises, handed to the same
``run_guarded`` that ``lab.cli.main`` uses.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lab.crash import EX_SOFTWARE, one_line, write_crash_log

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^lab: internal error: (\w+): (.*) \(details: (.+)\)$")

SCRIPT = """
import sys
from pathlib import Path
from lab.crash import run_guarded

def boom() -> int:
    raise {exc}

def dirs() -> list[Path]:
    {dirs}

sys.exit(run_guarded(boom, dirs))
"""


def crash(tmp_path: Path, exc: str, dirs: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    code = SCRIPT.format(exc=exc, dirs=dirs)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=REPO, env={**os.environ, "TMPDIR": str(tmpdir)},
                         check=False)
    return res, tmpdir


def parse(res: subprocess.CompletedProcess[str]) -> tuple[str, str, Path]:
    assert res.returncode == EX_SOFTWARE, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    match = LINE.match(lines[0])
    assert match, lines[0]
    return match[1], match[2], Path(match[3])


def check_log(log: Path, *needles: str) -> None:
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    text = log.read_text()
    assert "Traceback (most recent call last)" in text
    for needle in needles:
        assert needle in text
    assert not list(log.parent.glob(".lab-crash-*")), "temporary file left behind"


def test_unexpected_error_is_one_line_exit_70_and_a_private_log(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    res, _ = crash(tmp_path, 'LookupError("first line\\nsecond line")',
                   f"return [Path({str(state)!r})]")
    kind, message, log = parse(res)
    assert (kind, message) == ("LookupError", "first line | second line")
    assert log.parent == state
    check_log(log, "LookupError: first line\nsecond line", "in boom")


def test_log_falls_back_to_tmp_when_the_state_dir_is_unknown(tmp_path: Path) -> None:
    res, tmpdir = crash(tmp_path, 'RuntimeError("disk on fire")',
                        'raise ValueError("the config is what is broken")')
    kind, message, log = parse(res)
    assert (kind, message) == ("RuntimeError", "disk on fire")
    assert log.parent == tmpdir
    check_log(log, "disk on fire")


def test_unwritable_state_dir_falls_back_to_tmp(tmp_path: Path) -> None:
    res, tmpdir = crash(tmp_path, "OSError(28, 'No space left on device')",
                        f"return [Path({str(tmp_path / 'missing')!r})]")
    _, message, log = parse(res)
    assert "No space left" in message
    assert log.parent == tmpdir
    check_log(log)


def test_no_writable_directory_still_gives_one_line(tmp_path: Path) -> None:
    assert write_crash_log("x", [tmp_path / "missing"]) is None


def guarded(raise_stmt: str) -> subprocess.CompletedProcess[str]:
    code = ("import sys\nfrom lab.crash import run_guarded\nfrom lab.errors import LabFailure\n"
            f"def boom() -> int:\n    {raise_stmt}\n"
            "sys.exit(run_guarded(boom, lambda: []))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=REPO, check=False)


def test_lab_errors_stay_one_line_plus_fix() -> None:
    res = guarded("raise LabFailure('the\\nsummary', hint='do\\x1bthis')")
    assert res.returncode == 1
    assert res.stderr.splitlines() == ["lab: lab failed: the | summary", "  fix: do\\x1bthis"]


def test_interrupt_is_one_line() -> None:
    res = guarded("raise KeyboardInterrupt")
    assert (res.returncode, res.stderr) == (130, "lab: interrupted\n")


@pytest.mark.parametrize(("text", "line"), [
    ("a\nb", "a | b"), ("tab\tok", "tab\tok"), ("esc\x1b[2J", "esc\\x1b[2J"), ("", "")])
def test_one_line(text: str, line: str) -> None:
    assert one_line(text) == line


def test_crash_log_goes_to_an_existing_state_dir(tmp_path: Path) -> None:
    from lab.cli import crash_log_dirs

    config = tmp_path / "lab.toml"
    config.write_text(f'[lab]\nname = "fzc"\nstate_dir = "state"\npool_path = "{tmp_path}/p"\n')
    assert crash_log_dirs(str(config)) == []  # not created just to hold a log
    (tmp_path / "state").mkdir()
    assert crash_log_dirs(str(config)) == [tmp_path / "state"]


def test_closed_stdout_is_not_an_internal_error() -> None:
    # stdout is a pipe whose reader has gone: the first write fails with EPIPE.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        res = subprocess.run([sys.executable, "-m", "lab", "config"], cwd=REPO, stdout=write_end,
                             stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr, res.stderr
    assert res.returncode == 141
