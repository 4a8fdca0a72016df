"""What stops a test's waits early: libvirt's view of the leased VM during the test.

The ``lab_vm`` fixture arms one watch per test on the VM's :class:`~lab.wait.Abort`
(``Vm.crash_seen``). Each reason gives its own verdict, never the driver's by default:

* the guest crashed (libvirt's crashed event): *driver crashed*;
* the hypervisor paused the VM on a disk I/O error (a full pool): *lab failed*;
* the connection to libvirtd closed (libvirtd died): *lab failed* -- the removal event
  a hot-unplug waits for can no longer arrive, so running out of its budget would
  blame the driver for the lab's loss.
"""

from __future__ import annotations

from collections.abc import Callable

from lab.errors import HypervisorLost, LabError, VmPaused
from lab.hypervisor import Hypervisor, Lifecycle
from lab.vm import Vm


def watch(hv: Hypervisor, vm: Vm, on_crash: Callable[[], None]) -> Callable[[], None]:
    """Arm the watch; returns the function that disarms it."""
    def on_lifecycle(event: Lifecycle) -> None:
        vm.timeline.add(f"libvirt lifecycle: {event.text}")
        if event.crashed:
            on_crash()
            vm.crash_seen.set()  # waits in the test raise DriverCrash now
        elif event.io_error:
            vm.timeline.add(f"{vm.name} paused on a disk I/O error (is the pool full?)")
            vm.crash_seen.trip(lambda what: _paused(vm.name, what))

    def on_lost(description: str) -> None:
        vm.timeline.add(f"libvirt: {description}")
        vm.crash_seen.trip(lambda what: _lost(description, what))

    remove_lost = hv.on_lost(on_lost)
    cancel_lifecycle = hv.watch_lifecycle(vm.domain(), on_lifecycle)

    def disarm() -> None:
        cancel_lifecycle()
        remove_lost()

    return disarm


def _paused(name: str, what: str) -> LabError:
    return VmPaused(f"{name} was paused by the hypervisor on a disk I/O error while "
                    f"waiting for {what}", hint="free space on the file system of the lab's pool "
                    "([lab] pool_path), then `lab up` reverts the VM to its clean snapshot")


def _lost(description: str, what: str) -> LabError:
    return HypervisorLost(f"{description} while waiting for {what}",
                          hint="the next test or `lab up` restarts the lab's libvirtd "
                               "and reconnects; the VMs keep running")
