"""One timing budget per action, used by every scenario (and documented in the README).

A budget is how long the lab waits for one thing. Each says whose behaviour the
wait depends on: running out of a ``driver`` budget is a driver verdict (the driver
did not let go, did not answer, did not finish); running out of a ``lab`` budget is
a lab failure. The budgets are generous on purpose: a healthy driver that is slow
(seconds, not minutes) must pass -- the negative controls of the self-test prove it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from lab.errors import DeadlineExceeded, DriverFailure, DriverHang
from lab.wait import wait_for

T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    """How long the lab waits for one action, and whom running out of it blames."""

    seconds: float
    blames: Literal["driver", "lab"]
    what: str
    #: running out of it means the driver hung (rather than misbehaved)
    hang: bool = False

    def wait(self, what: str, probe: Callable[[], T | None]) -> T:
        """``wait_for`` with this budget; a driver budget running out is a driver verdict."""
        try:
            return wait_for(what, probe, self.seconds)
        except DeadlineExceeded as exc:
            if self.blames == "lab":
                raise
            kind = DriverHang if self.hang else DriverFailure
            raise kind(f"{exc.summary} (budget: {self.what})") from None


#: TCP connect and first echo from the echo driver (every scenario that connects)
FIRST_ECHO = Budget(10.0, "driver", "a TCP connection to the echo driver is accepted and "
                    "its first bytes come back")
#: no echo progress on a connection with bytes outstanding (load, churn, capacity)
STALL = Budget(10.0, "driver", "an echo connection with bytes outstanding makes progress")
#: libvirt's device-removed event after a live detach (the guest's driver let go)
UNPLUG = Budget(60.0, "driver", "the guest completes a NIC hot-unplug (the adapter is "
                "released)", hang=True)
#: the guest stops listing the MAC after libvirt removed the device
ADAPTER_GONE = Budget(30.0, "driver", "the guest no longer lists the removed adapter",
                      hang=True)
#: libvirt attaches a NIC and the guest configures its address
REPLUG = Budget(60.0, "lab", "a replugged NIC is attached and configured by the guest")
#: the transport binds a replugged or rebound adapter (journals BIND)
BIND = Budget(30.0, "driver", "the transport binds the adapter again")
#: the host's L2 echo answers on a (re)bound adapter
L2_ECHO = Budget(30.0, "driver", "the transport answers the L2 echo on a bound adapter")
#: an unbound adapter must stop answering the L2 echo within this long
L2_SILENT = Budget(1.0, "driver", "an unbound adapter stops answering the L2 echo")
#: the transport journals a test NIC's link state change (LINK_DOWN / LINK_UP) after
#: libvirt set the link down or up (the guest's link watch may delay it about a second)
LINK_STATE = Budget(20.0, "driver", "the transport journals the adapter's link state change")
#: a NIC carries IP again after the guest woke (the NIC model's resume, not the drivers)
NIC_ALIVE = Budget(15.0, "lab", "a test NIC carries IP traffic again after the wake")
#: a new VM's NICs are configured and have carrier before its clean snapshot (lab.settle):
#: an e1000e negotiates its link about 2 s after it is up, longer on a busy TCG host
NICS_SETTLED = Budget(30.0, "lab", "a new VM's NICs are configured with carrier")
#: the guest's own carrier follows libvirt's link state (the NIC model's emulation)
LINK_SEEN = Budget(10.0, "lab", "the guest's adapter reports the link change libvirt made")
#: a test NIC's carrier comes back in the guest's own view after an event that made its
#: NIC model renegotiate the link (an e1000e after a wake, a reset or a replug): only
#: the time with carrier counts towards a driver's L2_ECHO budget
LINK_BACK = Budget(30.0, "lab", "the guest's adapter has carrier again (the NIC model "
                   "renegotiating its link)")
#: the guest resets a NIC (Windows Restart-NetAdapter; Linux MTU change and down/up):
#: the command returns once the adapter's driver reinitialised it and the transport let go
NIC_RESET = Budget(120.0, "driver", "the guest's NIC reset command returns (the adapter "
                   "was reinitialised)", hang=True)
#: the guest disables a NIC (Windows Disable-NetAdapter; Linux removal of its PCI
#: function): the command returns once every protocol let go of the adapter
DISABLE = Budget(60.0, "driver", "the guest's NIC disable returns (every protocol let go "
                 "of the adapter)", hang=True)
#: the guest enables the NIC again (Enable-NetAdapter; a PCI rescan) and configures it
ENABLE = Budget(60.0, "lab", "an enabled NIC is back in the guest and configured")
#: the guest reaches the sleep state (libvirt reports it suspended) once asked to sleep:
#: a driver that blocks or vetoes the system suspend runs this out
SUSPEND = Budget(60.0, "driver", "the guest reaches the sleep state (no driver blocks the "
                 "system suspend)", hang=True)
#: libvirt wakes the guest and it answers SSH again (the lab's wake-up path)
RESUME = Budget(120.0, "lab", "a woken guest runs and answers SSH again")
#: the transport journals an adapter's power state change (SET_POWER_LOW / SET_POWER_ON)
POWER_STATE = Budget(30.0, "driver", "the transport journals the adapter's power state "
                     "change")
#: a rebooted guest answers SSH with a new boot (the lab's reboot path: a driver that
#: panics or hangs at boot is told apart from the console, see Vm.reboot); sized for a
#: Windows guest under software emulation (lab.guests.windows.REBOOT_DEADLINE_S), a
#: micro guest needs about 30 s
REBOOT = Budget(900.0, "lab", "a rebooted guest answers SSH again with a new boot")

ALL: tuple[tuple[str, Budget], ...] = (
    ("FIRST_ECHO", FIRST_ECHO), ("STALL", STALL), ("UNPLUG", UNPLUG),
    ("ADAPTER_GONE", ADAPTER_GONE), ("REPLUG", REPLUG), ("BIND", BIND),
    ("L2_ECHO", L2_ECHO), ("L2_SILENT", L2_SILENT), ("LINK_STATE", LINK_STATE),
    ("LINK_SEEN", LINK_SEEN), ("LINK_BACK", LINK_BACK), ("NIC_ALIVE", NIC_ALIVE),
    ("NIC_RESET", NIC_RESET), ("DISABLE", DISABLE), ("ENABLE", ENABLE),
    ("SUSPEND", SUSPEND), ("RESUME", RESUME), ("POWER_STATE", POWER_STATE),
    ("REBOOT", REBOOT),
)
