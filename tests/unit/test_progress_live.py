"""`lab up`'s live table: rows per VM from step events, rendered to a recorded terminal."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from lab.progress import Progress
from lab.progress_live import VmTable, last_console_line


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _console() -> Console:
    return Console(record=True, force_terminal=True, width=120, file=io.StringIO())


def _rows(console: Console, table: VmTable) -> dict[str, list[str]]:
    console.print(table.render())
    lines = console.export_text().splitlines()
    return {ln.split()[0]: ln.strip().split(None, 3) for ln in lines if ln.strip()}


def test_each_vm_has_a_row_with_its_step_time_and_last_message(tmp_path: Path) -> None:
    clock, console = Clock(), _console()
    table = VmTable(["vm1", "vm2", "vm3"], lambda vm: tmp_path / f"{vm}.log", console, clock)
    progress = Progress(sink=table)
    vm1, vm2 = progress.for_subject("vm1"), progress.for_subject("vm2")
    vm1.step("define")
    vm1("defined lab-vm1 (linked clone vm1.qcow2, 2 test NICs, q35)")
    clock.now += 7
    vm2.step("snapshot")
    clock.now += 3
    vm2.step("up")
    vm2("clean snapshot taken (3.0s)")
    rows = _rows(console, table)
    assert rows["VM"] == ["VM", "step", "for", "last"]
    assert rows["vm1"] == ["vm1", "define", "10s",
                           "defined lab-vm1 (linked clone vm1.qcow2, 2 test NICs, q35)"]
    assert rows["vm2"] == ["vm2", "up", "clean", "snapshot taken (3.0s)"]
    assert rows["vm3"][:3] == ["vm3", "image", "10s"]
    assert rows["1/3"] == ["1/3", "VMs", "up,", "10s"]


def test_a_booting_vm_shows_its_consoles_last_line(tmp_path: Path) -> None:
    clock, console = Clock(), _console()
    table = VmTable(["vm1"], lambda vm: tmp_path / f"{vm}.log", console, clock)
    table.step("vm1", "boot")
    assert _rows(console, table)["vm1"][3] == "console: nothing printed yet"
    (tmp_path / "vm1.log").write_bytes(b"x" * 900 + b"\n[    1.2] virtio_net: probe\n"
                                       b"\x1b[32mmicro: sshd up\x1b[0m\r\n\n  \n")
    assert _rows(_console(), table)["vm1"][3] == "console: micro: sshd up"


def test_lab_wide_lines_print_above_with_their_timestamp(tmp_path: Path) -> None:
    console = _console()
    table = VmTable(["vm1"], lambda vm: tmp_path / f"{vm}.log", console, Clock())
    Progress(sink=table)("network dlab-mgmt (management)")
    text = console.export_text().strip()
    assert text.startswith("[") and text.endswith("s] lab: network dlab-mgmt (management)")


def test_the_live_view_leaves_the_final_table_when_closed(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(force_terminal=True, width=120, file=out)
    table = VmTable(["vm1", "vm2"], lambda vm: tmp_path / f"{vm}.log", console)
    with Progress(sink=table) as progress:
        table.start()
        progress.step("vm1", "up")
        progress.step("vm2", "up")
    text = out.getvalue()
    assert "2/2 VMs up" in text and "vm1" in text and "vm2" in text


def test_plain_progress_ignores_steps_and_prints_lines_unchanged() -> None:
    out = io.StringIO()
    progress = Progress(stream=out)
    progress.step("vm1", "boot")
    progress.for_subject("vm1")("SSH answers after 3.0s")
    assert out.getvalue().endswith("] vm1: SSH answers after 3.0s\n")
    assert out.getvalue().count("\n") == 1


def test_last_console_line_reads_only_the_tail(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    assert last_console_line(log) is None
    log.write_text("first\n" + "y" * 5000 + "\nlast one\n")
    assert last_console_line(log) == "last one"


def test_a_narrow_terminal_cuts_the_message_never_the_vm_or_step(tmp_path: Path) -> None:
    console = Console(record=True, force_terminal=True, width=50, file=io.StringIO())
    table = VmTable(["vm1"], lambda vm: tmp_path / f"{vm}.log", console, Clock())
    table.step("vm1", "snapshot")
    table.event("vm1", "SSH answers after 15.9s on the management NIC 192.168.213.11", 3.0)
    console.print(table.render())
    row = next(ln for ln in console.export_text().splitlines() if ln.startswith("vm1"))
    assert row.split()[:3] == ["vm1", "snapshot", "0s"] and row.rstrip().endswith("…")
