"""Self-test: the lab catches real driver bugs.

Each fault knob of the Linux twins (drivers/*/driver.toml) is a bug a driver team
ships. With the knob on, the matching scenario must fail with the right verdict
(driver hung / driver failed / driver crashed) and the evidence must show why.
Here the failure is the expected outcome, so these tests pass when the lab
catches the bug and fail when it lets the bug through.
"""

from __future__ import annotations

import time

import pytest

from lab import scenarios
from lab.errors import DriverFailure, LabError
from lab.journal import parse_console_journal
from lab.leases import LeasedVm
from lab.verdict import classify

pytestmark = pytest.mark.scenario


def verdict_of(lab_vm: LeasedVm, exc: BaseException) -> str:
    """Verdict as the plugin gives it; a crash may need a moment to reach libvirt."""
    deadline = time.monotonic() + 15
    crashed = False
    while time.monotonic() < deadline and not crashed:
        crashed = lab_vm.vm.crashed()
        if not crashed:
            time.sleep(0.5)
    return classify(exc, crashed)


def test_leaked_adapter_reference_hangs_the_unplug(lab_vm: LeasedVm) -> None:
    tdi = lab_vm.deploy("labtdi", knobs=("leak_adapter_ref",))
    nic = lab_vm.test_nics[0]
    with pytest.raises(DriverFailure) as info:
        scenarios.hot_unplug(lab_vm.vm, tdi, nic, deadline=20)
    assert verdict_of(lab_vm, info.value) == "driver hung"
    assert nic.alias in str(info.value)
    assert "no device-removed" in lab_vm.vm.timeline.text()


@pytest.mark.parametrize(("driver", "missing"), [("labtdi", "PROTOCOL_DEREGISTERED"),
                                                 ("wskecho", "WSK_DEREGISTER")])
def test_skipped_deregistration_is_reported(lab_vm: LeasedVm, driver: str,
                                            missing: str) -> None:
    dep = lab_vm.deploy(driver, knobs=("skip_deregister",))
    with pytest.raises(LabError) as info:
        scenarios.unload(lab_vm.vm, dep, nics=lab_vm.test_nics)
    verdict = verdict_of(lab_vm, info.value)
    # The missing deregistration is reported; the callback it leaves behind may also
    # take the kernel down at the next network event (the guest then crashed).
    assert verdict in ("driver failed", "driver crashed")
    if verdict == "driver failed":
        assert missing in str(info.value)
        journal = dep.journal()
    else:  # the guest is gone: the journal lines are on its serial console too
        journal = parse_console_journal(lab_vm.console(), dep.vocabulary).journal.of_driver(
            dep.module)
    assert journal.count(missing) == 0
    assert journal.count("UNLOAD") == 1  # the unload itself finished: only the pair is broken


def test_corrupted_echo_byte_is_caught(lab_vm: LeasedVm) -> None:
    lab_vm.deploy("wskecho", knobs=("corrupt_echo",))
    with pytest.raises(DriverFailure) as info:
        scenarios.load(lab_vm.vm, lab_vm.test_nics, seconds=2.0)
    assert verdict_of(lab_vm, info.value) == "driver failed"
    assert "corrupt byte" in str(info.value)
    assert "expected 0x" in str(info.value) and "offset" in str(info.value)


@pytest.mark.parametrize("driver", ["wskecho", "labtdi"])
def test_blocked_unload_is_a_hang(lab_vm: LeasedVm, driver: str) -> None:
    dep = lab_vm.deploy(driver, knobs=("block_unload",))
    with pytest.raises(DriverFailure) as info:
        dep.unload(deadline=15)
    assert verdict_of(lab_vm, info.value) == "driver hung"
    assert dep.module in str(info.value) and "did not" in str(info.value)


def test_crash_on_unbind_is_a_driver_crash(lab_vm: LeasedVm) -> None:
    tdi = lab_vm.deploy("labtdi", knobs=("crash_on_unbind",))
    nic = lab_vm.test_nics[0]
    others = lab_vm.test_nics[1:]
    with pytest.raises(LabError) as info:
        scenarios.unbind_rebind(lab_vm.vm, tdi, nic, others)
    assert verdict_of(lab_vm, info.value) == "driver crashed"
    kind = lab_vm.vm.kind
    if kind.panic_markers:  # the guest kernel reports its panic on the serial console
        assert kind.fatal_console_line(lab_vm.console()) is not None
    else:  # the guest writes its own dump and reboots (Windows): the lab decodes it
        notes = lab_vm.vm.handle.crash_evidence(lab_vm.evidence.path)
        assert any(n.startswith("bugcheck 0x000000E2") for n in notes), notes


@pytest.mark.parametrize(("scenario", "caught"), [("link_flap", "tore down its binding"),
                                                   ("nic_reset", "out of order")])
def test_teardown_on_link_down_is_caught(lab_vm: LeasedVm, scenario: str, caught: str) -> None:
    """A transport that unbinds an adapter when its link goes down (a media disconnect
    treated as a removal) fails the link flap (it tore the binding down) and the NIC
    reset (a teardown without the query-remove, never bound again): driver failed."""
    if lab_vm.vm.kind.name == "windows":  # drivers/labtdi/driver.toml says why
        pytest.skip("labtdi.sys has no teardown_on_link_down knob (no link-state handling)")
    lab_vm.deploy("wskecho")
    tdi = lab_vm.deploy("labtdi", knobs=("teardown_on_link_down",))
    nic = lab_vm.test_nics[0]
    run = scenarios.link_flap if scenario == "link_flap" else scenarios.nic_reset
    with pytest.raises(DriverFailure) as info:
        run(lab_vm.vm, tdi, lab_vm.test_nics, nic)
    assert verdict_of(lab_vm, info.value) == "driver failed"
    assert caught in str(info.value) and nic.alias in str(info.value)
    names = tdi.journal().names()
    assert "LINK_DOWN" in names and "UNBIND" in names
