"""Run folders (lab.runs, lab.run_session) through real pytest sessions and `lab report`.

The sessions run in a temporary directory with the Driver Lab plugin (entry point) and
a ``lab_vm`` fixture of their own, so no lab is needed; what they leave behind is
what a scenario run leaves: run.json, collected.txt, results.jsonl, JUnit, ``latest``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lab import runs
from lab.report import read_junit, run_state, verdict_cell
from lab.report_cases import read_cases

SUITE = '''
import pytest

@pytest.fixture
def lab_vm():
    return None

def test_a(lab_vm):
    pass

def test_b(lab_vm):
    {b}

def test_c(lab_vm):
    pass

def test_not_a_lab_test():
    pass
'''


def session(tmp: Path, b: str, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp / "lab.toml").write_text('[lab]\nname = "dlruns"\nstate_dir = "state"\n')
    (tmp / "test_suite.py").write_text(SUITE.format(b=b))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "test_suite.py", "--lab-config", "lab.toml", "--lab-progress=off",
                           *extra], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=120)


def lab_report(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", "--config", "lab.toml", "report",
                           *args], cwd=tmp, capture_output=True, text=True, timeout=60)


def test_a_complete_run_has_its_own_folder_and_latest_link(tmp_path: Path) -> None:
    res = session(tmp_path, "pass")
    assert res.returncode == 0, res.stdout
    run = runs.latest_run(tmp_path / "artifacts", "dlruns")
    assert run.folder.parent == tmp_path / "artifacts" / "dlruns" / "runs"
    assert (tmp_path / "artifacts" / "dlruns" / "latest").resolve() == run.folder
    assert run.state == "complete" and run.exit_status == 0
    assert [n.split("::")[1] for n in run.collected] == ["test_a", "test_b", "test_c"]
    assert Path(run.start.junit) == run.folder / "junit.xml"
    assert run.start.lab == "dlruns" and run.start.state_dir == str(tmp_path / "state")
    report = lab_report(tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    first = report.stdout.splitlines()[0]
    assert first.startswith(f"run {run.run_id} of lab dlruns") and str(tmp_path / "state") in first
    assert "run complete: 3 of 3 lab tests have a result" in report.stdout


def test_an_interrupted_run_says_so_and_names_the_tests_that_did_not_run(
        tmp_path: Path) -> None:
    res = session(tmp_path, "raise KeyboardInterrupt", f"--lab-run-dir={tmp_path / 'run'}")
    assert res.returncode == 2, res.stdout
    run = runs.read_run(tmp_path / "run")
    assert run.state == "interrupted"
    assert [n.split("::")[1] for n in run.not_run] == ["test_b", "test_c"]
    assert not (tmp_path / "artifacts").exists()  # --lab-run-dir: no latest link either
    report = lab_report(tmp_path, "--run", str(tmp_path / "run"))
    assert report.returncode == 1
    assert "run INTERRUPTED" in report.stdout and "2 of 3 lab tests" in report.stdout
    assert "not run: test_suite.py::test_b" in report.stdout
    assert "not run: test_suite.py::test_c" in report.stdout


def test_a_session_without_lab_tests_leaves_no_folder(tmp_path: Path) -> None:
    res = session(tmp_path, "pass", "-k", "not_a_lab_test")
    assert res.returncode == 0, res.stdout
    assert not (tmp_path / "artifacts").exists()


def test_a_killed_session_counts_as_interrupted(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    runs.write_start(folder, runs.RunStart("20261202T000000Z-0000", "dl", "lab.toml", "var",
                                           "", 0.0, pid=0))
    runs.write_collected(folder, ["t::a", "t::b"])
    runs.append_result(folder, "t::a", "passed")
    with (folder / runs.RESULTS_FILE).open("a") as fh:
        fh.write('{"nodeid": "t::b", "outc')  # cut off by the kill
    run = runs.read_run(folder)
    assert run.state == "interrupted" and run.not_run == ("t::b",)
    assert "not run: t::b" in run_state(run)


def test_a_nameless_junit_case_is_cut_off_not_passed(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text('<testsuites><testsuite><testcase classname="t" name="test_a" time="1"/>'
                     '<testcase time="6.1"/></testsuite></testsuites>')
    rows = read_junit(junit)
    assert [r.outcome for r in rows] == ["pass", "CUT OFF"]
    assert [c.name for c in read_cases(junit)] == ["test_a"]


def test_a_self_test_shows_expected_and_observed_verdict(tmp_path: Path) -> None:
    assert verdict_cell({"verdict": "driver hung", "expected_verdict": "driver hung"}) == \
        "expected driver hung, got driver hung"
    assert verdict_cell({"verdict": "pass"}) == "pass"
    junit = tmp_path / "junit.xml"
    junit.write_text('<testsuites><testsuite><testcase classname="t" name="test_knob" time="1">'
                     '<properties><property name="expected_verdict" value="driver hung"/>'
                     '<property name="verdict" value="driver hung"/></properties></testcase>'
                     '</testsuite></testsuites>')
    [case] = read_cases(junit)
    assert case.verdict == "driver hung" and case.verdict_class == "pass"


def test_an_expectation_words_both_verdicts() -> None:
    from lab.expect import Expectation

    hit = Expectation(("driver hung",), "driver hung")
    assert hit.met and hit.text() == "expected driver hung, got driver hung"
    miss = Expectation(("driver failed", "driver crashed"), "lab failed")
    assert not miss.met
    assert miss.text() == "expected driver failed or driver crashed, got lab failed"
