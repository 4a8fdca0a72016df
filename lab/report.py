"""Summary of a scenario run: a table from the JUnit XML, and proof of parallelism.

`lab report` (and `make lab`) prints scenario x driver x NIC model with the
verdict and throughput, then how many VMs were leased at the same time.
"""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.runs import RunRecord

#: The outcome of a JUnit testcase the session was interrupted in.
CUT_OFF = "CUT OFF"


@dataclass(frozen=True)
class Row:
    scenario: str
    params: str
    outcome: str
    verdict: str
    vm: str
    throughput: str
    seconds: float


def read_junit(path: Path) -> list[Row]:
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        outcome = "pass"
        if not case.get("name"):  # pytest-xdist writes a nameless case for a test cut off
            outcome = CUT_OFF     # by Ctrl-C: it did not pass
        elif case.find("failure") is not None or case.find("error") is not None:
            outcome = "FAIL"
        elif case.find("skipped") is not None:
            outcome = "skip"
        name = case.get("name", "")
        scenario, _, params = (name or "(a test cut off: no name in the JUnit XML)").partition("[")
        rows.append(Row(scenario=scenario.removeprefix("test_"), params=params.rstrip("]"),
                        outcome=outcome, verdict=verdict_cell(props),
                        vm=props.get("vm", ""), throughput=props.get("throughput_MBps", ""),
                        seconds=float(case.get("time", "0") or 0)))
    return rows


def verdict_cell(props: dict[str, str]) -> str:
    """The lab's verdict; for a self-test also what it expected (``expected X, got Y``)."""
    verdict = props.get("verdict", "")
    expected = props.get("expected_verdict")
    return f"expected {expected}, got {verdict}" if expected else verdict


def table(rows: list[Row]) -> str:
    head = ("SCENARIO", "DRIVER/NIC", "RESULT", "VERDICT", "VM", "MB/s", "SECONDS")
    body = [(r.scenario, r.params, r.outcome, r.verdict, r.vm, r.throughput,
             f"{r.seconds:.1f}") for r in rows]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True))
                     for line in [head, *body])


def _lease_events(lease_log: Path) -> list[dict[str, Any]]:
    """The lease log's events; a line cut short by a full disk is skipped."""
    events = []
    for line in lease_log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and {"t", "event", "vm", "holder"} <= event.keys():
            events.append(event)
    return events


def max_concurrency(lease_log: Path, since: float = 0.0,
                    until: float = float("inf")) -> tuple[int, list[str]]:
    """Most VMs leased at once between ``since`` and ``until`` (epoch seconds: one run's
    span), and by which workers (from leases.jsonl, which all runs of the lab share)."""
    if not lease_log.exists():
        return 0, []
    events = sorted((e for e in _lease_events(lease_log) if since <= e["t"] <= until),
                    key=lambda e: e["t"])
    held: dict[str, str] = {}
    best: dict[str, str] = {}
    for ev in events:
        worker = re.split(r":", ev["holder"], maxsplit=1)[0]
        if ev["event"] == "acquire":
            held[ev["vm"]] = worker
        else:
            held.pop(ev["vm"], None)
        if len(held) > len(best):
            best = dict(held)
    return len(best), sorted(f"{w}->{vm}" for vm, w in best.items())


def summary(junit: Path, lease_log: Path, run: RunRecord | None = None) -> str:
    rows = read_junit(junit)
    passed = sum(r.outcome == "pass" for r in rows)
    failed = sum(r.outcome == "FAIL" for r in rows)
    cut = sum(r.outcome == CUT_OFF for r in rows)
    span = (run.start.started, run.ended or float("inf")) if run is not None else (0.0,)
    n, who = max_concurrency(lease_log, *span)
    lines = [table(rows), "",
             f"scenarios: {passed} passed, {failed} failed"
             + (f", {cut} cut off (neither passed nor failed)" if cut else ""),
             f"most VMs leased at once: {n} ({', '.join(who)})"]
    return "\n".join(lines)


def run_header(run: RunRecord) -> str:
    """Which run of which lab the report reads, and from where."""
    start = run.start
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(start.started))
    return (f"run {start.run_id} of lab {start.lab} (started {when}; config {start.config}; "
            f"state dir {start.state_dir})\nrun folder: {run.folder}\nJUnit: {start.junit}")


def run_state(run: RunRecord) -> str:
    """One line when the run is complete; else what was cut off, test by test."""
    total = len(run.collected)
    if run.state == "complete":
        return f"run complete: {total} of {total} lab tests have a result"
    if run.state == "running":
        return (f"run STILL RUNNING (pid {run.start.pid}): {len(run.finished)} of {total} "
                "lab tests have a result so far")
    why = ("INTERRUPTED (Ctrl-C, or the session never finished)" if run.state == "interrupted"
           else "INCOMPLETE (stopped early, e.g. -x or --maxfail)")
    lines = [f"run {why}: {len(run.not_run)} of {total} lab tests did not run or did not "
             "finish (they count as neither passed nor failed):"]
    lines += [f"  not run: {nodeid}" for nodeid in run.not_run]
    return "\n".join(lines)
