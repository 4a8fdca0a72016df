"""Summary of a scenario run: a table from the JUnit XML, and proof of parallelism.

`lab report` (and `make lab`) prints scenario x driver x NIC model with the
verdict and throughput, then how many VMs were leased at the same time.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


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
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "FAIL"
        elif case.find("skipped") is not None:
            outcome = "skip"
        name = case.get("name", "")
        scenario, _, params = name.partition("[")
        rows.append(Row(scenario=scenario.removeprefix("test_"), params=params.rstrip("]"),
                        outcome=outcome, verdict=props.get("verdict", ""),
                        vm=props.get("vm", ""), throughput=props.get("throughput_MBps", ""),
                        seconds=float(case.get("time", "0") or 0)))
    return rows


def table(rows: list[Row]) -> str:
    head = ("SCENARIO", "DRIVER/NIC", "RESULT", "VERDICT", "VM", "MB/s", "SECONDS")
    body = [(r.scenario, r.params, r.outcome, r.verdict, r.vm, r.throughput,
             f"{r.seconds:.1f}") for r in rows]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True))
                     for line in [head, *body])


def max_concurrency(lease_log: Path) -> tuple[int, list[str]]:
    """Most VMs leased at once, and by which workers (from leases.jsonl)."""
    if not lease_log.exists():
        return 0, []
    events = sorted((json.loads(line) for line in lease_log.read_text().splitlines() if line),
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


def summary(junit: Path, lease_log: Path) -> str:
    rows = read_junit(junit)
    passed = sum(r.outcome == "pass" for r in rows)
    failed = sum(r.outcome == "FAIL" for r in rows)
    n, who = max_concurrency(lease_log)
    lines = [table(rows), "",
             f"scenarios: {passed} passed, {failed} failed",
             f"most VMs leased at once: {n} ({', '.join(who)})"]
    return "\n".join(lines)
