"""Self-test: the lab catches real driver bugs.

Each fault knob of the Linux twins (drivers/*/driver.toml) is a bug a driver team
ships. With the knob on, the matching scenario must fail with the right verdict
(driver hung / driver failed / driver crashed) and the evidence must show why.
Here the failure is the expected outcome, so these tests pass when the lab
catches the bug and fail when it lets the bug through. ``expect_verdict`` keeps
both verdicts: JUnit, verdict.txt and `lab report` say "expected driver hung, got
driver hung", never a bare "pass".
"""

from __future__ import annotations

import pytest

from lab import scenarios
from lab.errors import DriverFailure, LabError
from lab.expect import expect_verdict
from lab.journal import parse_console_journal
from lab.leases import LeasedVm

pytestmark = pytest.mark.scenario


def test_leaked_adapter_reference_hangs_the_unplug(lab_vm: LeasedVm) -> None:
    tdi = lab_vm.deploy("labtdi", knobs=("leak_adapter_ref",))
    nic = lab_vm.test_nics[0]
    with pytest.raises(DriverFailure) as info:
        scenarios.hot_unplug(lab_vm.vm, tdi, nic, deadline=20)
    expect_verdict(lab_vm, info.value, "driver hung")
    assert nic.alias in str(info.value)
    assert "no device-removed" in lab_vm.vm.timeline.text()


@pytest.mark.parametrize(("driver", "missing"), [("labtdi", "PROTOCOL_DEREGISTERED"),
                                                 ("wskecho", "WSK_DEREGISTER")])
def test_skipped_deregistration_is_reported(lab_vm: LeasedVm, driver: str,
                                            missing: str) -> None:
    dep = lab_vm.deploy(driver, knobs=("skip_deregister",))
    with pytest.raises(LabError) as info:
        scenarios.unload(lab_vm.vm, dep, nics=lab_vm.test_nics)
    verdict = expect_verdict(lab_vm, info.value, "driver failed", "driver crashed")
    # The missing deregistration is reported; the callback it leaves behind may also
    # take the kernel down at the next network event (the guest then crashed).
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
    expect_verdict(lab_vm, info.value, "driver failed")
    assert "corrupt byte" in str(info.value)
    assert "expected 0x" in str(info.value) and "offset" in str(info.value)


@pytest.mark.parametrize("driver", ["wskecho", "labtdi"])
def test_blocked_unload_is_a_hang(lab_vm: LeasedVm, driver: str) -> None:
    dep = lab_vm.deploy(driver, knobs=("block_unload",))
    with pytest.raises(DriverFailure) as info:
        dep.unload(deadline=15)
    expect_verdict(lab_vm, info.value, "driver hung")
    assert dep.module in str(info.value) and "did not" in str(info.value)


def test_crash_on_unbind_is_a_driver_crash(lab_vm: LeasedVm) -> None:
    tdi = lab_vm.deploy("labtdi", knobs=("crash_on_unbind",))
    nic = lab_vm.test_nics[0]
    others = lab_vm.test_nics[1:]
    with pytest.raises(LabError) as info:
        scenarios.unbind_rebind(lab_vm.vm, tdi, nic, others)
    expect_verdict(lab_vm, info.value, "driver crashed")
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
        pytest.skip("labtdi.sys has no teardown_on_link_down knob (it journals link "
                    "changes and keeps its bindings)")
    lab_vm.deploy("wskecho")
    tdi = lab_vm.deploy("labtdi", knobs=("teardown_on_link_down",))
    nic = lab_vm.test_nics[0]
    run = scenarios.link_flap if scenario == "link_flap" else scenarios.nic_reset
    with pytest.raises(DriverFailure) as info:
        run(lab_vm.vm, tdi, lab_vm.test_nics, nic)
    expect_verdict(lab_vm, info.value, "driver failed")
    assert caught in str(info.value) and nic.alias in str(info.value)
    names = tdi.journal().names()
    assert "LINK_DOWN" in names and "UNBIND" in names


def test_leaked_adapter_reference_hangs_the_disable(lab_vm: LeasedVm) -> None:
    """The reference labtdi keeps on an unregistered adapter blocks the device disable
    (micro: the PCI remove waits for the netdev forever; Windows: UnbindAdapterEx pends):
    driver hung."""
    tdi = lab_vm.deploy("labtdi", knobs=("leak_adapter_ref",))
    nic = lab_vm.test_nics[0]
    with pytest.raises(DriverFailure) as info:
        scenarios.disable_enable(lab_vm.vm, tdi, nic)
    expect_verdict(lab_vm, info.value, "driver hung")
    assert "did not return" in str(info.value)
    assert f"disable {nic.alias}" in lab_vm.vm.timeline.text()


def test_no_rebind_after_resume_is_caught(lab_vm: LeasedVm) -> None:
    """A transport that releases its bindings for the sleep and never binds again after
    the wake fails the sleep/resume contract: driver failed."""
    if lab_vm.vm.kind.name == "windows":  # drivers/labtdi/driver.toml says why
        pytest.skip("labtdi.sys has no no_rebind_after_resume knob")
    tdi = lab_vm.deploy("labtdi", knobs=("no_rebind_after_resume",))
    with pytest.raises(DriverFailure) as info:
        scenarios.sleep_resume(lab_vm.vm, tdi, lab_vm.test_nics)
    expect_verdict(lab_vm, info.value, "driver failed")
    assert "nor was bound again" in str(info.value)
    names = tdi.journal().names()
    assert "SET_POWER_LOW" in names and "QUERY_REMOVE" in names


def test_config_after_register_is_caught_at_reboot(lab_vm: LeasedVm) -> None:
    """A transport that applies its configuration only after the protocol registered
    binds the adapters present at load before it knows its skip list; at boot every NIC
    is present, so the reboot with the drivers installed finds the management NIC bound:
    driver failed."""
    if lab_vm.vm.kind.name == "windows":  # drivers/labtdi/driver.toml says why
        pytest.skip("labtdi.sys has no config_after_register knob")
    tdi = lab_vm.deploy("labtdi", knobs=("config_after_register",), persistent=True)
    kecho = lab_vm.deploy("wskecho", persistent=True)
    with pytest.raises(DriverFailure) as info:
        scenarios.reboot_installed(lab_vm.vm, (tdi, kecho), lab_vm.test_nics, tdi)
    expect_verdict(lab_vm, info.value, "driver failed")
    mgmt = lab_vm.vm.handle.management_mac
    assert mgmt and "management NIC" in str(info.value) and mgmt in str(info.value)
    assert any(e.name == "BIND" and e.adapter is not None and e.adapter.mac == mgmt
               for e in tdi.journal())
