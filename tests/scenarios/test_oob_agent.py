"""The out-of-band channel and the management NIC's isolation (micro Linux guests).

The guest agent answers over virtio-serial whatever happened to the guest's network,
so a scenario that loses SSH is judged: agent answers -> NetworkBroken (a driver
failure); agent silent -> the LabFailure stays. The driver under test never binds
the management NIC (labtdi skip_macs).
"""

from __future__ import annotations

import time

import pytest

from lab import agent
from lab.errors import GuestUnreachable, LabFailure, NetworkBroken
from lab.leases import LeasedVm
from lab.verdict import DRIVER_FAILED, classify


@pytest.fixture
def micro_vm(lab_vm: LeasedVm) -> LeasedVm:
    if lab_vm.vm.kind.name != "linux-micro":
        pytest.skip("the micro guest's agent and shell commands")
    return lab_vm


def _cut_management(leased: LeasedVm) -> None:
    """Take the management NIC down inside the guest (what a broken driver could do)."""
    vm = leased.vm
    mgmt = vm.handle.adapter(vm.entry.mgmt.mac)
    vm.handle.shell.start(f"sleep 1; ip link set {mgmt.name} down")
    time.sleep(3)
    vm.guest.close()


def test_agent_answers_ping_and_sysrq(micro_vm: LeasedVm) -> None:
    vm = micro_vm.vm
    assert vm.agent_alive()
    assert agent.sysrq(vm.hv, vm.domain(), "w") == "w"
    assert "sysrq: Show Blocked State" in vm.handle.kernel_log()


def test_labtdi_never_binds_the_management_nic(micro_vm: LeasedVm) -> None:
    vm = micro_vm.vm
    dep = micro_vm.deploy("labtdi")
    bound = {a.mac for a in dep.journal().adapters()}
    assert vm.entry.mgmt.mac.lower() not in bound
    assert {n.mac.lower() for n in vm.entry.test_nics} <= bound
    dep.unload()


def test_lost_ssh_with_the_agent_answering_is_a_broken_network(micro_vm: LeasedVm) -> None:
    _cut_management(micro_vm)
    with pytest.raises(GuestUnreachable) as lost:
        micro_vm.vm.handle.adapters()
    judged = micro_vm.vm.judge_lost(lost.value)
    assert isinstance(judged, NetworkBroken)
    assert classify(judged, crashed=False) == DRIVER_FAILED


def test_lost_guest_with_the_agent_silent_stays_a_lab_failure(micro_vm: LeasedVm) -> None:
    vm = micro_vm.vm
    dom = vm.domain()
    dom.suspend()  # neither SSH nor the agent can answer
    try:
        vm.guest.close()
        with pytest.raises(LabFailure) as lost:
            vm.handle.adapters()
        assert vm.judge_lost(lost.value) is lost.value
    finally:
        dom.resume()
