"""Read one test's evidence folder for the HTML report, all on the lease's clock.

Three clocks meet in an evidence folder: ``timeline.txt`` counts seconds since the
VM was leased, a ``load-<i>.json`` timeline counts seconds since that load run
started, and a driver journal counts the guest's nanoseconds. The report puts
everything on the lease clock:

* load run *i* starts at the *i*-th ``load:`` line of the timeline (when the
  timeline has exactly one such line per load file; otherwise its lab events are
  not drawn, rather than drawn in the wrong place);
* a driver's journal is anchored at its first ``LOAD`` event, which happened just
  before the timeline's ``<module> loaded`` line (the lab notes the load once the
  command returned, so journal times read a few tens of milliseconds early).

Reading is lenient: a report shows what is there and never fails on a short file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TIMELINE_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)s\s+(.*)$")
#: Timeline lines that are lab actions on a NIC or a binding (drawn as vertical lines).
_ACTION = re.compile(r"\b(detach|attach|device-removed|unbound|bound|unplug|replug|unbind|bind"
                     r"|link \S+ (?:up|down))\b")
_LOAD_START = re.compile(r"^load:")
_LOADED = re.compile(r"^(\S+) loaded\b")


@dataclass(frozen=True)
class LabEvent:
    """One line of ``timeline.txt``."""

    t: float
    """Seconds since the lease."""
    text: str

    @property
    def is_action(self) -> bool:
        """An unplug / detach / attach / unbind / bind / replug (or link) line."""
        return not _LOAD_START.match(self.text) and _ACTION.search(self.text) is not None


@dataclass(frozen=True)
class JournalLine:
    """One driver journal line, with its time on the lease clock when it can be anchored."""

    t_ns: int
    driver: str
    event: str
    adapter: str
    status: str
    lease_t: float | None


@dataclass(frozen=True)
class LoadErrorMark:
    target: str
    t: float
    """Seconds since the load started."""
    cls: str


@dataclass(frozen=True)
class LoadRun:
    """One ``load-<i>.json``: 100 ms buckets per target, and its errors."""

    name: str
    targets: tuple[str, ...]
    starts: tuple[float, ...]
    ends: tuple[float, ...]
    per_target: tuple[tuple[int, ...], ...]
    """Bytes per bucket, one tuple per target (``targets`` order)."""
    errors: tuple[LoadErrorMark, ...]
    throughput: float
    """Bytes per second over the run."""
    start_on_lease: float | None
    """Lease-clock second at which the load started, when the timeline says."""


def read_timeline(text: str) -> list[LabEvent]:
    events = []
    for line in text.splitlines():
        match = _TIMELINE_LINE.match(line)
        if match:
            events.append(LabEvent(float(match.group(1)), match.group(2).strip()))
    return events


def read_journal(text: str, events: list[LabEvent]) -> list[JournalLine]:
    """Journal lines (malformed ones skipped), put on the lease clock when anchored."""
    raw: list[tuple[int, str, str, str, str]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0].isdigit():
            raw.append((int(parts[0]), parts[1], parts[2], parts[3], parts[4]))
    offset = _journal_offset(raw, events)
    return [JournalLine(t, drv, ev, ad, st, None if offset is None else t / 1e9 + offset)
            for t, drv, ev, ad, st in raw]


def _journal_offset(raw: list[tuple[int, str, str, str, str]],
                    events: list[LabEvent]) -> float | None:
    """Lease seconds minus guest seconds, from the driver's LOAD and the ``loaded`` line."""
    load = next((r for r in raw if r[2] == "LOAD"), None)
    if load is None:
        return None
    for event in events:
        match = _LOADED.match(event.text)
        if match and match.group(1) == load[1]:
            return event.t - load[0] / 1e9
    return None


def load_starts(events: list[LabEvent]) -> list[float]:
    """Lease-clock seconds of the timeline's ``load:`` lines."""
    return [e.t for e in events if _LOAD_START.match(e.text)]


def read_load(path: Path, start_on_lease: float | None) -> LoadRun:
    data: dict[str, Any] = json.loads(path.read_text())
    targets = tuple(str(t["target"]) for t in data.get("targets", []))
    buckets: list[dict[str, Any]] = data.get("timeline", [])
    per_target = tuple(tuple(int(b["per_target"][i]) for b in buckets)
                       for i in range(len(targets)))
    errors = tuple(LoadErrorMark(str(e["target"]), float(e["time"]), str(e["cls"]))
                   for e in data.get("errors", []))
    return LoadRun(name=path.name, targets=targets,
                   starts=tuple(float(b["start"]) for b in buckets),
                   ends=tuple(float(b["end"]) for b in buckets),
                   per_target=per_target, errors=errors,
                   throughput=float(data.get("throughput", 0.0)),
                   start_on_lease=start_on_lease)


def _load_index(path: Path) -> int:
    digits = path.stem.removeprefix("load-")
    return int(digits) if digits.isdigit() else 0


def read_loads(folder: Path, events: list[LabEvent]) -> list[LoadRun]:
    """Every ``load-<i>.json`` of ``folder`` in order, anchored when the timeline allows."""
    files = sorted(folder.glob("load-*.json"), key=_load_index)
    starts = load_starts(events)
    anchored = len(starts) == len(files)
    return [read_load(f, starts[i] if anchored else None) for i, f in enumerate(files)]
