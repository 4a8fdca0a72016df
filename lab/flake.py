"""Flake detection (nightly mode, ``--lab-rerun-failed``).

A scenario that fails runs once more, from the start: its VM leased and reverted to
the clean snapshot again, its drivers deployed again. Only the second run's reports
reach the terminal, JUnit and the run folder, each carrying the classification:

* ``flake=flaky`` -- the second run passed (the test passes; the first verdict is kept
  as ``first_verdict``), the run history and the report flag it;
* ``flake=consistent`` -- the second run failed too (a real failure, twice).

Failures in setup (no VM could be leased, the lab is down) are not re-run: they are
the lab's, and a second try would only hide them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _pytest.runner import runtestprotocol

from lab.report_cases import CONSISTENT, FLAKE, FLAKY

__all__ = ["CONSISTENT", "FIRST_VERDICT", "FLAKE", "FLAKY", "run_with_rerun"]

FIRST_VERDICT = "first_verdict"


def _failed_in_call(reports: list[pytest.TestReport]) -> bool:
    return any(r.failed and r.when == "call" for r in reports)


def _first_verdict(reports: list[pytest.TestReport]) -> str:
    for report in reports:
        if report.when == "call":
            verdicts = [v for k, v in report.user_properties if k == "verdict"]
            return str(verdicts[-1]) if verdicts else "failed"
    return "failed"


def run_with_rerun(item: pytest.Item, nextitem: pytest.Item | None,
                   reset: Callable[[pytest.Item], None]) -> None:
    """The runtest protocol of ``item``, with one re-run when its call failed."""
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    reports = runtestprotocol(item, nextitem=nextitem, log=False)
    extra: list[tuple[str, object]] = []
    if _failed_in_call(reports):
        first = _first_verdict(reports)
        item.user_properties.clear()
        reset(item)
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        kind = CONSISTENT if _failed_in_call(reports) else FLAKY
        extra = [(FLAKE, kind), (FIRST_VERDICT, first)]
    for report in reports:  # JUnit takes the properties from the teardown report
        report.user_properties.extend(extra)
        if report.when == "call" and extra:
            report.sections.append(("Driver Lab flake", f"{extra[0][1]} (first run: "
                                                        f"{extra[1][1]})"))
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
