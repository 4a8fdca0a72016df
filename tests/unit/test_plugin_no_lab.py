"""With no lab up, the scenario suite fails with one line that says how to bring one up.

Runs the real pytest plugin in a subprocess against a lab.toml whose state
directory has no inventory: a run that tested nothing must never look green,
unless the user opts in to skipping with --lab-skip-if-down.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _suite(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "lab.toml"
    config.write_text('[lab]\nname = "dlnolab"\nstate_dir = "state"\n')
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs",
         "tests/scenarios/test_scenarios.py", "-k", "load_every_nic",
         "--lab-config", str(config), f"--lab-run-dir={tmp_path / 'run'}", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=120)


def test_no_lab_fails_with_one_line_naming_the_fix(tmp_path: Path) -> None:
    res = _suite(tmp_path)
    assert res.returncode == 1, res.stdout
    lines = [ln for ln in res.stdout.splitlines() if "is not up" in ln]
    assert lines, res.stdout
    assert "lab dlnolab is not up" in lines[0]
    assert f"make lab-up CONFIG={tmp_path / 'lab.toml'}" in lines[0]
    assert "Traceback" not in res.stdout
    assert "1 error" in res.stdout


def test_no_lab_skips_only_when_asked(tmp_path: Path) -> None:
    res = _suite(tmp_path, "--lab-skip-if-down")
    assert res.returncode == 0, res.stdout
    assert "1 skipped" in res.stdout and "is not up" in res.stdout
