"""Flake detection (``--lab-rerun-failed``, lab/flake.py) on real pytest runs.

The scenarios here are test doubles (no VM): marked ``scenario`` like the suite's,
one fails only on its first run (a counter file), one fails every time, one passes.
Each run is a real pytest subprocess with the Driver Lab plugin; the JUnit it writes
is what is checked.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

DOUBLES = '''
import pytest
from pathlib import Path

pytestmark = pytest.mark.scenario
COUNT = Path(__file__).with_name("runs.txt")


def test_double_fails_only_on_its_first_run() -> None:
    runs = int(COUNT.read_text()) if COUNT.exists() else 0
    COUNT.write_text(str(runs + 1))
    assert runs > 0, "first run fails"


def test_double_fails_every_time() -> None:
    assert False, "always"


def test_double_passes() -> None:
    pass
'''


def run(tmp_path: Path, *args: str) -> dict[str, tuple[str, dict[str, str]]]:
    (tmp_path / "test_doubles.py").write_text(DOUBLES)
    junit = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                    "--lab-progress=off", f"--junitxml={junit}", "--rootdir", str(tmp_path),
                    "-c", "/dev/null", *args, str(tmp_path / "test_doubles.py")],
                   cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        outcome = "failed" if case.find("failure") is not None else "passed"
        out[case.get("name", "")] = (outcome, props)
    return out


def test_a_double_that_fails_only_once_is_flaky_and_a_real_failure_consistent(
        tmp_path: Path) -> None:
    cases = run(tmp_path, "--lab-rerun-failed")
    assert cases["test_double_fails_only_on_its_first_run"] == (
        "passed", {"flake": "flaky", "first_verdict": "failed"})
    assert cases["test_double_fails_every_time"] == (
        "failed", {"flake": "consistent", "first_verdict": "failed"})
    assert cases["test_double_passes"] == ("passed", {})
    assert (tmp_path / "runs.txt").read_text() == "2"


def test_without_the_option_nothing_is_re_run(tmp_path: Path) -> None:
    cases = run(tmp_path)
    assert cases["test_double_fails_only_on_its_first_run"][0] == "failed"
    assert "flake" not in cases["test_double_fails_every_time"][1]
    assert (tmp_path / "runs.txt").read_text() == "1"


def test_the_classification_reaches_the_run_history(tmp_path: Path) -> None:
    from lab import history

    run(tmp_path, "--lab-rerun-failed")
    db = tmp_path / "history.sqlite"
    history.record(db, tmp_path / "junit.xml", "rev", "cfg")
    by_test = {t.test.rsplit("::", 1)[1]: t for t in
               history.summarize(history.last_runs(db, 10))}
    once = by_test["test_double_fails_only_on_its_first_run"]
    assert once.flakes == ("flaky",) and once.verdicts == ("pass",)
    assert history.flaky_text(once) == "flaky on re-run in 1 of 1 runs"
    assert by_test["test_double_fails_every_time"].flakes == ("consistent",)
    assert by_test["test_double_passes"].flakes == (None,)
