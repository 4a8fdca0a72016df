"""The mutation self-test's pure parts: mutant headers, judging a run, the score table.

The runs themselves (a pytest session per mutant on a real lab) are exercised by
`make selftest` and, for the quick subset, by `make test`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import ConfigError
from lab.selftest.mutants import Mutant, load_mutants, parse_mutant
from lab.selftest.score import (
    FALSE_ALARM,
    KILLED,
    LAB_FAILED,
    PASSED,
    SURVIVED,
    WRONG_VERDICT,
    Case,
    judge,
    read_cases,
    score_table,
)

DIFF = "--- a/labtdi.c\n+++ b/labtdi.c\n@@ -1 +1 @@\n-a\n+b\n"


def write(root: Path, name: str, header: str, driver: str = "labtdi") -> Path:
    folder = root / driver / "linux" / "mutants"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.patch"
    path.write_text(header + "\n" + DIFF)
    return path


HEADER = ("Mutant: keeps-ref\nDriver: labtdi\nBreaks: admin unbind keeps the reference\n"
          "Expect: driver hung\nScenarios: test_unbind_rebind_unplug\n")


def test_header_is_parsed(tmp_path: Path) -> None:
    m = parse_mutant(write(tmp_path, "keeps-ref", HEADER + "Quick: yes\n"))
    assert (m.name, m.driver, m.expect, m.scenarios, m.quick) == (
        "keeps-ref", "labtdi", "driver hung", ("test_unbind_rebind_unplug",), True)
    assert not m.control


@pytest.mark.parametrize(("edit", "key"), [
    (("Expect: driver hung", "Expect: hung"), "Expect"),
    (("Scenarios: test_unbind_rebind_unplug", "Scenarios: unbind"), "Scenarios"),
    (("Driver: labtdi", "Driver: wskecho"), "Driver"),
    (("Mutant: keeps-ref", "Mutant: other-name"), "Mutant"),
    (("Breaks: admin unbind keeps the reference\n", ""), "Breaks"),
])
def test_bad_headers_name_the_file_and_key(tmp_path: Path, edit: tuple[str, str],
                                           key: str) -> None:
    path = write(tmp_path, "keeps-ref", HEADER.replace(*edit))
    with pytest.raises(ConfigError) as info:
        parse_mutant(path)
    assert info.value.key == key and str(path) in info.value.summary


def test_a_mutant_without_a_diff_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "labtdi" / "linux" / "mutants" / "keeps-ref.patch"
    path.parent.mkdir(parents=True)
    path.write_text(HEADER)
    with pytest.raises(ConfigError, match="no unified diff"):
        parse_mutant(path)


def test_the_repository_mutants_are_many_distinct_and_have_controls() -> None:
    mutants = load_mutants()
    real = [m for m in mutants if not m.control]
    assert len(real) >= 15 and len([m for m in mutants if m.control]) >= 2
    assert len({m.breaks for m in real}) == len(real)
    assert any(m.quick and m.control for m in mutants) and any(m.quick for m in real)


MUTANT = Mutant("keeps-ref", "labtdi", "x", "driver hung", ("test_a",), False, Path("p"))
CONTROL = Mutant("slow", "labtdi", "y", "pass", ("test_a",), False, Path("q"))


@pytest.mark.parametrize(("mutant", "cases", "status"), [
    (MUTANT, [Case("test_a[1]", "pass", ""), Case("test_a[2]", "driver hung", "hung")], KILLED),
    (MUTANT, [Case("test_a", "driver failed", "order")], WRONG_VERDICT),
    (MUTANT, [Case("test_a", "pass", "")], SURVIVED),
    (MUTANT, [Case("test_a", "lab failed", "ssh")], LAB_FAILED),
    (MUTANT, [], LAB_FAILED),
    (CONTROL, [Case("test_a", "pass", ""), Case("test_b", "pass", "")], PASSED),
    (CONTROL, [Case("test_a", "driver hung", "slow")], FALSE_ALARM),
    (CONTROL, [Case("test_a", "lab failed", "ssh")], LAB_FAILED),
])
def test_judging(mutant: Mutant, cases: list[Case], status: str) -> None:
    assert judge(mutant, cases, 1.0).status == status


def test_junit_cases_and_the_score_line(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite><testcase name="test_a[x]"><properties>'
        '<property name="verdict" value="driver hung"/></properties>'
        '<failure message="lab failed? no: driver hung: unplug did not complete&#10;more"/>'
        '</testcase><testcase name="test_b"><properties><property name="verdict" '
        'value="pass"/></properties></testcase></testsuite></testsuites>')
    cases = read_cases(junit)
    assert cases == [Case("test_a[x]", "driver hung",
                          "lab failed? no: driver hung: unplug did not complete"),
                     Case("test_b", "pass", "")]
    assert read_cases(tmp_path / "missing.xml") == []
    table = score_table([judge(MUTANT, cases, 3.0), judge(CONTROL, cases, 2.0)])
    assert "mutation score: 1/1 killed with the expected verdict (100%); " \
           "negative controls: 0/1 passed" in table


def test_the_exception_class_is_cut_from_the_evidence_line(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text('<testsuite><testcase name="t"><properties><property name="verdict" '
                     'value="driver hung"/></properties><failure message="lab.errors.'
                     'DriverHang: driver hung: unplug of ua-test1"/></testcase></testsuite>')
    assert read_cases(junit)[0].message == "driver hung: unplug of ua-test1"
