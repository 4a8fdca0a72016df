"""The micro Linux guest kind: command building and output parsing (pure)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from lab.config import parse_config
from lab.drivers import LinuxTwin
from lab.guests import guest_kind, kind_class
from lab.guests.linux_micro import (
    LinuxMicro,
    control_line,
    dump_panic_lines,
    insmod_argv,
    parse_adapters,
    parse_watchdog,
    rmmod_argv,
)
from lab.guests.micro_image import WATCHDOG_SOURCE, build_static
from lab.plan import make_plan

# Real output of the adapter command in a micro guest (captured from vm1 of the default
# lab: two test NICs, the management NIC and loopback).
ADAPTERS_OUTPUT = """\
if eth0 52:54:00:9b:00:00 2 1
if eth1 52:54:00:9b:00:01 3 0
if eth2 52:54:00:9b:00:02 4 -
if lo 00:00:00:00:00:00 1 1
1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 192.168.213.11/24 scope global eth0\\       valid_lft forever preferred_lft forever
3: eth1    inet 192.168.214.11/24 scope global eth1\\       valid_lft forever preferred_lft forever
"""


def twin() -> LinuxTwin:
    return LinuxTwin(module="demo", file=Path("/x/demo.ko"),
                     params=(("port", "7007"),), journal=PurePosixPath("/proc/demo/journal"),
                     control=None, unload_deadline_s=30, knobs=())


def test_adapters_are_found_by_mac_with_index_and_addresses() -> None:
    adapters = {a.mac: a for a in parse_adapters(ADAPTERS_OUTPUT)}
    eth1 = adapters["52:54:00:9b:00:01"]
    assert (eth1.name, eth1.index, eth1.addresses) == ("eth1", 3, ("192.168.214.11/24",))
    assert adapters["52:54:00:9b:00:02"].addresses == ()  # replugged, not configured yet
    assert str(eth1.journal_adapter) == "52:54:00:9b:00:01@3"
    # carrier: 1, 0, or "-" (sysfs refuses to read it on a down adapter)
    assert [adapters[f"52:54:00:9b:00:0{i}"].carrier for i in range(3)] == [True, False, None]


def test_module_commands_are_argument_lists() -> None:
    guest = PurePosixPath("/tmp/lab-drivers/demo.ko")
    assert insmod_argv(twin(), guest) == ["insmod", str(guest), "port=7007"]
    assert rmmod_argv(twin()) == ["rmmod", "demo"]
    assert control_line("unbind", "eth1") == "unbind eth1"
    with pytest.raises(ValueError):
        control_line("unbind", "eth1; reboot")
    with pytest.raises(ValueError):
        control_line("format", "eth1")


def test_the_registry_resolves_the_micro_kind_from_the_config() -> None:
    config = parse_config({}, Path("/tmp/lab.toml"))
    kind = guest_kind(config)
    assert isinstance(kind, LinuxMicro) and kind_class("linux-micro") is LinuxMicro
    assert make_plan(config).vms[0].mgmt.model == LinuxMicro.management_nic
    panic = "[  1.0] Kernel panic - not syncing: x"
    assert kind.fatal_console_line(f"ok\n{panic}\n") == panic
    assert kind.fatal_console_line("booting\nlogin:\n") is None


def test_watchdog_state_is_read_from_the_lock_register() -> None:
    out = "device 0000:00:1b.0\nlock   2\n"
    assert parse_watchdog(out) == ("0000:00:1b.0", 2)
    assert parse_watchdog("") == ("", None)


def test_the_watchdog_petter_builds_and_init_respawns_it(tmp_path: Path) -> None:
    build_static(WATCHDOG_SOURCE, tmp_path / "lab-watchdog")
    assert (tmp_path / "lab-watchdog").stat().st_size > 0
    inittab = (WATCHDOG_SOURCE.parent / "rootfs" / "etc" / "inittab").read_text()
    assert "::respawn:/sbin/lab-watchdog" in inittab


def test_panic_lines_are_read_from_a_memory_dump(tmp_path: Path) -> None:
    """Bytes as a micro guest's memory.elf holds them after the watchdog's NMI panic
    (printk ring records: an 8-byte id, then the text), plus the kernel's format string."""
    dump = tmp_path / "memory.elf"
    dump.write_bytes(b"\x7fELF" + b"\x00" * 100
                     + b"Kernel panic - not syncing: %s\n\x00"
                     + b"\xea\x01\xfe\xff\x00\x00\x00\x00Kernel panic - not syncing: NMI: "
                       b"Not continuing\n\x00"
                     + b"\xf6\x01\xfe\xff\x00\x00\x00\x00RIP: 0010:spin_init+0x20/0x1000 "
                       b"[spin]\n\x00" + b"\x00" * 64)
    assert dump_panic_lines(dump) == ["Kernel panic - not syncing: NMI: Not continuing",
                                      "RIP: 0010:spin_init+0x20/0x1000 [spin]"]
