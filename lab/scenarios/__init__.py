"""The scenarios: hot-unplug, unbind/rebind, load, capacity, load + churn, link flap,
NIC reset, device disable/enable, sleep/resume, reboot, unload, and the compositions that
catch what one action alone cannot (a reference kept after an admin unbind shows only
at the next unplug; a connection never closed shows only at the unload after churn).

Each scenario is a function of a leased :class:`~lab.vm.Vm` and the deployed drivers
(:class:`~lab.guests.base.Deployment`); it speaks only the guest interface, so the
same code runs on every guest kind. It returns its measurements, or raises
:class:`~lab.errors.DriverFailure` naming the broken rule (the oracles of DESIGN.md
and the seed documents) or :class:`~lab.errors.LabFailure` when the lab itself could
not do its part. Every wait uses one budget of :mod:`lab.budgets`. The pytest suite
(tests/scenarios), the fault-knob tests and the mutation self-test call the same
functions.
"""

from lab.scenarios.adapters import hot_unplug, unbind_rebind, unbind_rebind_unplug
from lab.scenarios.common import Measurements, adapter_of, await_probe, echo_once, require_probe
from lab.scenarios.device import disable_enable
from lab.scenarios.link import link_flap, nic_reset
from lab.scenarios.reboot import reboot_installed
from lab.scenarios.sleep import sleep_resume
from lab.scenarios.traffic import capacity, check_load, load, load_churn
from lab.scenarios.unload import churn_then_unload, unload

__all__ = [
    "Measurements",
    "adapter_of",
    "await_probe",
    "capacity",
    "check_load",
    "churn_then_unload",
    "disable_enable",
    "echo_once",
    "hot_unplug",
    "link_flap",
    "load",
    "load_churn",
    "nic_reset",
    "reboot_installed",
    "require_probe",
    "sleep_resume",
    "unbind_rebind",
    "unbind_rebind_unplug",
    "unload",
]
