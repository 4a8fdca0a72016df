"""Judging one mutant from its scenario run, and the mutation score table."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from lab.selftest.mutants import Mutant

KILLED = "killed"
SURVIVED = "SURVIVED"
WRONG_VERDICT = "WRONG VERDICT"
PASSED = "passed"
FALSE_ALARM = "FALSE ALARM"
LAB_FAILED = "LAB FAILED"
#: outcomes that count as the oracle doing its job
GOOD = (KILLED, PASSED)
#: pytest's "module.Class: " before an exception's message in a JUnit failure
_EXC_PREFIX = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Failure|Hang|Crash|Exceeded|"
                         r"Timeout|Unreachable|Failed|Broken|Exception): ")


@dataclass(frozen=True)
class Case:
    """One scenario test of a mutant's run, as its JUnit record says."""

    name: str
    verdict: str  #: the plugin's verdict property (pass, driver hung, lab failed, ...)
    message: str  #: first line of the failure message ("" when it passed)


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    status: str
    got: str  #: the verdict that decided, with the test that gave it
    evidence: str  #: first line of that test's failure (what a reader sees first)
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status in GOOD


def read_cases(junit: Path) -> list[Case]:
    """Cases of a JUnit file ([] when it is missing or unreadable: nothing ran)."""
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return []
    cases = []
    for case in root.iter("testcase"):
        props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        message = "" if bad is None else (bad.get("message") or bad.text or "").strip()
        verdict = props.get("verdict") or ("pass" if bad is None else "lab failed")
        if case.find("skipped") is not None:
            verdict = "skipped"
        first = message.splitlines()[0] if message else ""
        cases.append(Case(case.get("name", ""), verdict, _EXC_PREFIX.sub("", first)[:300]))
    return cases


def judge(mutant: Mutant, cases: list[Case], seconds: float, why_empty: str = "") -> Outcome:
    """Killed / survived / wrong verdict for a mutant; passed / false alarm for a control."""
    if not cases:
        return Outcome(mutant, LAB_FAILED, "nothing ran", why_empty, seconds)
    lab = [c for c in cases if c.verdict in ("lab failed", "skipped")]
    failed = [c for c in cases if c.verdict != "pass"]
    if mutant.control:
        if not failed:
            return Outcome(mutant, PASSED, f"pass x{len(cases)}", "", seconds)
        first = failed[0]
        status = LAB_FAILED if first in lab else FALSE_ALARM
        return Outcome(mutant, status, f"{first.verdict} ({first.name})", first.message,
                       seconds)
    right = [c for c in failed if c.verdict == mutant.expect]
    if right:
        return Outcome(mutant, KILLED, f"{right[0].verdict} ({right[0].name})",
                       right[0].message, seconds)
    if lab:
        return Outcome(mutant, LAB_FAILED, f"{lab[0].verdict} ({lab[0].name})",
                       lab[0].message, seconds)
    if failed:
        return Outcome(mutant, WRONG_VERDICT, f"{failed[0].verdict} ({failed[0].name})",
                       failed[0].message, seconds)
    return Outcome(mutant, SURVIVED, f"pass x{len(cases)}", "", seconds)


def score_table(outcomes: list[Outcome], width: int = 90) -> str:
    """The mutation score table (Markdown, readable as plain text too)."""
    head = "| mutant | driver | breaks | expected | got | outcome | first evidence line |"
    rows = [head, "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        evidence = o.evidence.replace("|", "/")
        if len(evidence) > width:
            evidence = evidence[: width - 3] + "..."
        rows.append(f"| {o.mutant.name} | {o.mutant.driver} | {o.mutant.breaks} | "
                    f"{o.mutant.expect} | {o.got} | {o.status} | {evidence} |")
    mutants = [o for o in outcomes if not o.mutant.control]
    controls = [o for o in outcomes if o.mutant.control]
    killed = sum(1 for o in mutants if o.ok)
    passed = sum(1 for o in controls if o.ok)
    pct = f"{100 * killed / len(mutants):.0f}%" if mutants else "n/a"
    rows.append("")
    rows.append(f"mutation score: {killed}/{len(mutants)} killed with the expected verdict "
                f"({pct}); negative controls: {passed}/{len(controls)} passed")
    return "\n".join(rows)
