"""The test cases of a JUnit XML run, each with its verdict class.

Shared by the HTML report (:mod:`lab.report_html`) and the run history
(:mod:`lab.history`). The verdict comes from the ``verdict`` property the pytest
plugin writes; a case without one is classed by its JUnit outcome.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabFailure
from lab.verdict import DRIVER_CRASHED, DRIVER_FAILED, DRIVER_HUNG, LAB_FAILED, PASS

SKIPPED = "skipped"
UNCLASSIFIED = "failed without a verdict"
#: The JUnit property a re-run failure carries (lab/flake.py) and its two values.
FLAKE = "flake"
FLAKY = "flaky"
CONSISTENT = "consistent"

#: The verdict classes of the summary, in the order reports show them.
VERDICT_CLASSES: tuple[str, ...] = (PASS, DRIVER_CRASHED, DRIVER_HUNG, DRIVER_FAILED,
                                    LAB_FAILED, SKIPPED)


@dataclass(frozen=True)
class Case:
    """One JUnit testcase."""

    classname: str
    name: str
    outcome: str
    """``pass``, ``fail``, ``error`` or ``skip`` (from the JUnit elements)."""
    seconds: float
    props: dict[str, str]
    message: str
    """The failure, error or skip text (empty for a pass)."""

    @property
    def verdict(self) -> str:
        """The lab's verdict line (the ``verdict`` property), else the outcome's class."""
        return self.props.get("verdict") or self.verdict_class

    @property
    def verdict_class(self) -> str:
        """One of :data:`VERDICT_CLASSES`, or :data:`UNCLASSIFIED`."""
        verdict = self.props.get("verdict", "")
        if self.props.get("expected_verdict") and self.outcome == "pass":
            return PASS  # a self-test that got the verdict it expected
        if verdict in VERDICT_CLASSES:
            return verdict
        if self.outcome == "pass":
            return PASS
        if self.outcome == "skip":
            return SKIPPED
        return UNCLASSIFIED

    @property
    def throughput(self) -> float | None:
        """MB/s from the ``throughput_MBps`` property, if the test recorded one."""
        try:
            return float(self.props["throughput_MBps"])
        except (KeyError, ValueError):
            return None

    @property
    def flake(self) -> str | None:
        """``flaky`` or ``consistent`` when the test was re-run (``--lab-rerun-failed``)."""
        return self.props.get(FLAKE) or None

    @property
    def test_id(self) -> str:
        return f"{self.classname}::{self.name}" if self.classname else self.name


def _outcome(case: ET.Element) -> tuple[str, str]:
    for tag, outcome in (("failure", "fail"), ("error", "error"), ("skipped", "skip")):
        found = case.find(tag)
        if found is not None:
            text = (found.get("message") or "") + "\n" + (found.text or "")
            return outcome, text.strip()
    return "pass", ""


def _case(element: ET.Element) -> Case:
    props = {p.get("name", ""): p.get("value", "") for p in element.iter("property")}
    outcome, message = _outcome(element)
    return Case(classname=element.get("classname", ""), name=element.get("name", ""),
                outcome=outcome, seconds=float(element.get("time", "0") or 0),
                props=props, message=message)


def read_cases(junit: Path) -> list[Case]:
    """Every testcase of ``junit`` that has a name; a missing or broken file is a lab
    failure."""
    try:
        root = ET.parse(junit).getroot()
    except FileNotFoundError:
        raise LabFailure(f"{junit} does not exist",
                         hint="run the scenario suite first (make lab)") from None
    except ET.ParseError as exc:
        raise LabFailure(f"{junit} is not valid JUnit XML: {exc}",
                         hint="was the run interrupted while writing it? run it again") from None
    # pytest-xdist writes a nameless testcase for a test cut off by Ctrl-C: not a result.
    return [_case(element) for element in root.iter("testcase") if element.get("name")]


def count_by_class(cases: list[Case]) -> dict[str, int]:
    """How many cases fall in each verdict class (every class listed, unclassified if any)."""
    counts = dict.fromkeys(VERDICT_CLASSES, 0)
    for case in cases:
        counts[case.verdict_class] = counts.get(case.verdict_class, 0) + 1
    return counts
