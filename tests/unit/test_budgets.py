"""Timing budgets (lab/budgets.py): whose fault running out is decides the verdict class."""

from __future__ import annotations

import pytest

from lab import budgets
from lab.budgets import Budget
from lab.errors import DeadlineExceeded, DriverFailure, DriverHang, LabFailure
from lab.verdict import DRIVER_FAILED, DRIVER_HUNG, LAB_FAILED, classify


def never() -> None:
    return None


def test_a_driver_budget_running_out_is_a_driver_verdict() -> None:
    """A rebound adapter that never answers the L2 echo is the driver's failure."""
    quick = Budget(0.05, "driver", budgets.L2_ECHO.what)
    with pytest.raises(DriverFailure) as info:
        quick.wait("L2 echo from the rebound test0", never)
    assert not isinstance(info.value, DriverHang)
    assert classify(info.value, crashed=False) == DRIVER_FAILED
    assert "L2 echo from the rebound test0" in info.value.summary
    assert "budget: the transport answers the L2 echo" in info.value.summary


def test_a_hang_budget_gives_driver_hung() -> None:
    quick = Budget(0.05, "driver", budgets.ADAPTER_GONE.what, hang=True)
    with pytest.raises(DriverHang) as info:
        quick.wait("the MAC to vanish", never)
    assert classify(info.value, crashed=False) == DRIVER_HUNG


def test_a_lab_budget_running_out_stays_a_lab_failure() -> None:
    quick = Budget(0.05, "lab", budgets.REPLUG.what)
    with pytest.raises(DeadlineExceeded) as info:
        quick.wait("the replugged NIC's address", never)
    assert isinstance(info.value, LabFailure)
    assert classify(info.value, crashed=False) == LAB_FAILED


def test_a_value_within_the_budget_is_returned() -> None:
    assert Budget(1.0, "driver", "x").wait("x", lambda: 42) == 42


def test_one_budget_per_action_and_the_first_echo_budget_is_shared() -> None:
    """Every scenario's connect/first-echo and stall deadline is the same documented value."""
    names = [n for n, _ in budgets.ALL]
    assert len(names) == len(set(names))
    assert budgets.FIRST_ECHO.seconds >= 10 and budgets.STALL.seconds >= 10
    assert {b.blames for _, b in budgets.ALL} == {"driver", "lab"}
