"""The evidence folder of one test: what explains its verdict.

verdict.txt, the serial-console slice of the test, the guest's kernel log, the
driver journals, the libvirt event timeline, load results as JSON and, on a
crash or a hang, what the guest kind can add (a host memory dump, the guest's
own crash dump decoded, blocked-task stacks, an NMI dump).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lab.errors import LabError
from lab.guests.base import Deployment
from lab.load import LoadResult
from lab.verdict import DRIVER_HUNG
from lab.vm import Vm

if TYPE_CHECKING:
    from lab.expect import Expectation


@dataclass
class Evidence:
    """The evidence folder of one test."""

    path: Path
    deployments: list[Deployment] = field(default_factory=list)
    loads: list[LoadResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    expectation: Expectation | None = None
    """A self-test's expected and observed verdict (:func:`lab.expect.expect_verdict`)."""

    def write(self, name: str, text: str) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / name
        target.write_text(text)
        return target

    def add_load(self, result: LoadResult) -> None:
        self.loads.append(result)


def collect(vm: Vm, ev: Evidence, verdict: str, crashed: bool, console: str,
            text: str | None = None) -> None:
    """Write the evidence folder (always; it is small), plus dumps on a crash or hang.

    ``verdict.txt`` holds ``text`` (``lab.verdict.verdict_text``: a crash says what
    crashed, then what the test was doing) or else the bare verdict, then the notes.
    Every load result of the test (``vm.loads``, then ``ev.loads``, each once) is
    written as ``load-<i>.json``, also when the scenario failed after the load.
    """
    if crashed:
        _crash(vm, ev)
    elif verdict == DRIVER_HUNG:
        _hang(vm, ev)
    if not crashed:
        _guest_logs(vm, ev)
    ev.write("verdict.txt", (text or verdict) + "\n" + "".join(f"  {n}\n" for n in ev.notes))
    ev.write("console.log", console)
    for i, load in enumerate(unique_loads(vm.loads, ev.loads)):
        ev.write(f"load-{i}.json", json.dumps(load.to_dict(), indent=1, default=str))
    ev.write("timeline.txt", vm.timeline.text())


def unique_loads(*groups: Sequence[LoadResult]) -> list[LoadResult]:
    """The load results of ``groups`` in order, each once (a result both in ``vm.loads``
    and recorded through ``Evidence.add_load`` is the same object)."""
    seen: set[int] = set()
    loads: list[LoadResult] = []
    for load in (load for group in groups for load in group):
        if id(load) not in seen:
            seen.add(id(load))
            loads.append(load)
    return loads


def _guest_logs(vm: Vm, ev: Evidence) -> None:
    try:
        ev.write("kernel-log.txt", vm.handle.kernel_log())
        ev.write("network.txt", vm.handle.network_state())
        for dep in ev.deployments:
            ev.write(f"journal-{dep.module}.txt", "".join(e.line + "\n" for e in dep.journal()))
    except LabError as exc:
        ev.write("guest-unreachable.txt", f"{exc}\n")
        vm.guest.close()


def _crash(vm: Vm, ev: Evidence) -> None:
    ev.path.mkdir(parents=True, exist_ok=True)
    if vm.handle.host_dump_on_crash:
        target = ev.path / "memory.elf"
        try:
            vm.hv.dump_memory(vm.domain(), str(target))
            vm.timeline.add(f"memory dump written: {target.name}")
        except LabError as exc:
            ev.write("memory-dump-failed.txt", f"{exc}\n")
    try:
        ev.notes.extend(vm.handle.crash_evidence(ev.path))
    except LabError as exc:
        ev.notes.append(f"crash evidence from the guest unavailable: {exc.summary}")


def _hang(vm: Vm, ev: Evidence) -> None:
    """Blocked-task stacks (or the kind's NMI path), then a live memory dump of the hung
    guest before the next test reverts it (compressed kdump: crash(8) opens it)."""
    try:
        ev.notes.extend(vm.handle.hang_evidence(
            ev.path, lambda: vm.hv.inject_nmi(vm.domain())))
    except LabError as exc:
        ev.notes.append(f"hang evidence unavailable: {exc.summary}")
    if not vm.handle.host_dump_on_crash:
        return
    target = ev.path / "memory-hang.kdump"
    try:
        ev.path.mkdir(parents=True, exist_ok=True)
        vm.hv.dump_memory(vm.domain(), str(target), compressed=True, live=True)
        ev.notes.append(f"live memory dump of the hung guest in {target.name}")
    except LabError as exc:
        ev.notes.append(f"memory dump of the hung guest failed: {exc.summary}")
