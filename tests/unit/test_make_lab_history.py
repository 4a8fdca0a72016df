"""After two `make lab` runs, `lab history` shows both (issue 16, done means).

The run history is appended by the ``lab`` target's recipe itself: after the scenario
suite it runs ``lab report --html`` and ``lab history --record`` (the lab's latest run
folder). This test takes that recipe from ``make -n lab`` (its prerequisites, lab-up and
the driver build, marked as done with ``-o``) and runs it for real with ``sh``, twice,
with only the test path swapped: the scenario suite for a tiny file whose tests use a
``lab_vm`` fixture of their own, so the plugin makes a run folder as for a scenario run
without any VM. Then ``lab history`` must list both runs, by their run folder ids.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from make_targets import ROOT

SUITE = '''
import os
import pytest

@pytest.fixture
def lab_vm():
    return None

def test_a(lab_vm):
    pass

def test_b(lab_vm):
    assert os.environ.get("FAIL_B") != "1", "test_b fails on request"
'''


def lab_recipe(config: Path) -> str:
    """The shell command `make lab` runs after its prerequisites, for ``config``."""
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    venv = Path(sys.executable).parent.parent
    out = subprocess.run(["make", "-n", "--no-print-directory", "-o", "lab-up", "-o",
                          "drivers-linux", "lab", f"CONFIG={config}", f"VENV={venv}",
                          "WORKERS=2"], cwd=ROOT, check=True, capture_output=True,
                         text=True, timeout=60).stdout
    assert " tests/scenarios " in out and "history" in out, out
    return out.replace(" tests/scenarios ", f" {shlex.quote(str(config.parent / 'suite.py'))} ")


def make_lab(tmp: Path, recipe: str, fail_b: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "FAIL_B": "1" if fail_b else "0"}
    return subprocess.run(["sh", "-c", recipe], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=300)


def test_two_make_lab_runs_both_appear_in_lab_history(tmp_path: Path) -> None:
    config = tmp_path / "lab.toml"
    config.write_text('[lab]\nname = "dlhist"\nstate_dir = "state"\n')
    (tmp_path / "suite.py").write_text(SUITE)
    recipe = lab_recipe(config)
    first = make_lab(tmp_path, recipe, fail_b=False)
    assert first.returncode == 0, first.stdout + first.stderr
    second = make_lab(tmp_path, recipe, fail_b=True)
    assert second.returncode == 1, second.stdout + second.stderr  # the suite's status
    run_ids = sorted(p.name for p in (tmp_path / "artifacts" / "dlhist" / "runs").iterdir())
    assert len(run_ids) == 2
    for res, run_id in zip((first, second), run_ids, strict=True):
        assert f"history: run {run_id} recorded in {tmp_path / 'state'}" in res.stdout
        assert (tmp_path / "artifacts" / "dlhist" / "runs" / run_id / "report.html").is_file()
    shown = subprocess.run([sys.executable, "-m", "lab", "--config", str(config), "history"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("history: last 2 runs from ")
    listed = [line.split()[1] for line in lines[1:3]]
    assert listed == run_ids  # oldest first, by their run folder ids
    assert [line.split()[-2] for line in lines[1:3]] == ["2/2", "1/2"]
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("suite::")}
    assert rows["suite::test_a"][1:4] == ["2", "100%", "PP"]
    assert rows["suite::test_b"][1:3] == ["2", "50%"]
    # The run folder's own JUnit, given by path, is the same run (same id): nothing added.
    again = subprocess.run([sys.executable, "-m", "lab", "--config", str(config), "history",
                            "--record", f"artifacts/dlhist/runs/{run_ids[0]}/junit.xml"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert f"history: run {run_ids[0]} was already recorded" in again.stdout, again.stderr
