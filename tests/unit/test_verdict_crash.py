"""Crash verdicts: a panic on the serial console is a crash even when libvirt never said
so, and the report describes a crash as a crash, then what the test was doing."""

from __future__ import annotations

from pathlib import Path

from lab.config import parse_config
from lab.errors import CommandTimeout, DriverCrash, DriverHang
from lab.evidence import unique_loads
from lab.guests import guest_kind
from lab.guests.base import GuestKind
from lab.load import LoadResult, Mode
from lab.verdict import (
    DRIVER_CRASHED,
    DRIVER_HUNG,
    LIBVIRT_CRASHED,
    classify,
    crash_cause,
    verdict_text,
)

# A micro guest's console around an unbind: the boot line with panic=0 oops=panic (which
# must not count), the twin's lines, then an oops in the twin that oops=panic escalates.
HEALTHY = """\
[    0.000000] Kernel command line: console=ttyS0,115200 root=/dev/vda rw lab.hostname=vm1 \
panic=0 oops=panic log_buf_len=4M
[    0.000000] Dentry cache hash table entries: 32768 (order: 6, 262144 bytes, linear)
vm1:/# [   14.409608] kecho: loading out-of-tree module taints kernel.
[   14.436585] labjournal: 14486270728 kecho LOAD - ok
[   14.441254] kecho: listening on port 7007
[   14.558964] labjournal: 14608704842 kecho ACCEPT - ok
"""
PANIC_LINE = "[   42.140720] Kernel panic - not syncing: Fatal exception"
OOPS = f"""\
[   42.131877] BUG: kernel NULL pointer dereference, address: 0000000000000010
[   42.132410] #PF: supervisor read access in kernel mode
[   42.132733] #PF: error_code(0x0000) - not-present page
[   42.133051] PGD 0 P4D 0
[   42.133246] Oops: 0000 [#1] PREEMPT SMP NOPTI
[   42.133555] CPU: 0 PID: 211 Comm: sh Tainted: G           OE      6.1.0-27-amd64 #1
[   42.134188] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1
[   42.134788] RIP: 0010:kecho_unbind+0x2a/0x90 [kecho]
[   42.136700] Call Trace:
[   42.136880]  <TASK>
[   42.137250]  kecho_ctl_write+0x7e/0xd0 [kecho]
[   42.137540]  proc_reg_write+0x56/0xa0
[   42.137780]  vfs_write+0xcb/0x410
[   42.138010]  ksys_write+0x6f/0xf0
[   42.138240]  do_syscall_64+0x55/0xb0
[   42.138470]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[   42.138770]  </TASK>
[   42.138900] Modules linked in: kecho(OE) labtdi(OE) virtio_net net_failover failover
[   42.139400] CR2: 0000000000000010
[   42.139610] ---[ end trace 0000000000000000 ]---
{PANIC_LINE}
[   42.141300] Kernel Offset: 0x2a000000 from 0xffffffff81000000
[   42.142100] ---[ end Kernel panic - not syncing: Fatal exception ]---
"""


def micro() -> GuestKind:
    return guest_kind(parse_config({}, Path("/tmp/lab.toml")))


def test_a_console_panic_without_pvpanic_is_a_crash() -> None:
    cause = crash_cause(False, HEALTHY + OOPS, micro())
    assert cause == PANIC_LINE
    hang = DriverHang("driver hung: rmmod kecho did not return within 30s")
    assert classify(hang, cause is not None) == DRIVER_CRASHED


def test_a_healthy_console_is_no_crash_unless_libvirt_says_so() -> None:
    assert crash_cause(False, HEALTHY, micro()) is None
    assert crash_cause(True, HEALTHY, micro()) == LIBVIRT_CRASHED
    assert crash_cause(True, HEALTHY + OOPS, micro()) == PANIC_LINE  # the console says more


def test_a_crash_noticed_as_a_hang_is_reported_as_a_crash() -> None:
    hang = DriverHang("driver hung: rmmod kecho did not return within 30s")
    text = verdict_text(DRIVER_CRASHED, hang, PANIC_LINE)
    assert text.splitlines() == [
        f"driver crashed: {PANIC_LINE}",
        "noticed while: driver hung: rmmod kecho did not return within 30s",
    ]
    timeout = CommandTimeout("vm1", "ip -o link", 60)
    assert verdict_text(DRIVER_CRASHED, timeout, LIBVIRT_CRASHED).splitlines() == [
        "driver crashed: libvirt crashed event",
        "noticed while: vm1: 'ip -o link' did not finish within 60s",
    ]


def test_other_verdicts_keep_their_words() -> None:
    crash = DriverCrash("guest crashed (libvirt crashed event) while waiting for rmmod kecho")
    assert verdict_text(DRIVER_CRASHED, crash, None) == f"driver crashed: {crash.summary}"
    hang = DriverHang("driver hung: unload did not finish within 30s")
    assert verdict_text(DRIVER_HUNG, hang, None) == hang.summary  # not said twice
    slow = DriverHang("unplug of net1 took 61s")
    assert verdict_text(DRIVER_HUNG, slow, None) == "driver hung: unplug of net1 took 61s"
    assert verdict_text(DRIVER_HUNG, None, None) == DRIVER_HUNG
    failed = AssertionError("assert 1 == 2\n +  where 1 = f()")
    assert verdict_text("driver failed", failed, None) == "driver failed: assert 1 == 2"


def load_result(seconds: float) -> LoadResult:
    return LoadResult(mode=Mode.STREAM, duration=seconds, load_seconds=seconds, loop="asyncio",
                      targets=(), connections=(), errors=(), timeline=())


def test_load_results_are_written_once_each() -> None:
    a, b, c = load_result(1), load_result(2), load_result(1)  # c equals a, is another run
    assert [id(x) for x in unique_loads([a, b], [b, c, a])] == [id(a), id(b), id(c)]
