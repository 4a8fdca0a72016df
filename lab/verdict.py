"""Verdicts: every failed scenario says whether the driver or the lab failed.

Decided by the error's class (and libvirt's crashed event), never by its text:
``driver crashed`` / ``driver hung`` / ``driver failed`` / ``lab failed``.
"""

from __future__ import annotations

from lab.errors import DriverCrash, DriverFailure, DriverHang

PASS = "pass"
DRIVER_CRASHED = "driver crashed"
DRIVER_HUNG = "driver hung"
DRIVER_FAILED = "driver failed"
LAB_FAILED = "lab failed"


def classify(exc: BaseException | None, crashed: bool) -> str:
    """The verdict line for a failed scenario."""
    if crashed or isinstance(exc, DriverCrash):
        return DRIVER_CRASHED
    if isinstance(exc, DriverHang):
        return DRIVER_HUNG
    if isinstance(exc, (DriverFailure, AssertionError)):
        return DRIVER_FAILED
    return LAB_FAILED
