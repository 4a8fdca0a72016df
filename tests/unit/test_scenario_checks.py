"""The scenarios' pure checks: one timing budget everywhere, blame only after the action.

The load results here are built by hand (LoadResult is plain data); the engine that
produces them runs for real in tests/unit/test_load_*.py.
"""

from __future__ import annotations

import pytest

from lab import budgets
from lab.errors import DriverFailure
from lab.load import ConnError, ErrorClass, LoadResult, Mode
from lab.load.result import TargetSummary
from lab.naming import ECHO_PORT
from lab.plan import Nic
from lab.scenarios.traffic import _spec, check_churn

NIC0 = Nic("ua-test0", "test", "52:54:00:01:01:01", "virtio", "n0", "br0", "10.9.0.11", 24)
NIC1 = Nic("ua-test1", "test", "52:54:00:01:01:02", "vmxnet3", "n1", "br1", "10.9.1.11", 24)
T0, T1 = f"{NIC0.address}:{ECHO_PORT}", f"{NIC1.address}:{ECHO_PORT}"


def result(*errors: ConnError) -> LoadResult:
    targets = tuple(TargetSummary(t, 2, 1 << 20, 0) for t in (T0, T1))
    return LoadResult(mode=Mode.STREAM, duration=8.0, load_seconds=8.0, loop="asyncio",
                      targets=targets, connections=(), errors=errors, timeline=())


def reset(target: str, at: float) -> ConnError:
    return ConnError(conn=0, attempt=0, target=target, source=None, time=at,
                     cls=ErrorClass.RESET, detail="connection reset by peer")


def test_errors_on_the_churned_nic_after_the_churn_are_allowed() -> None:
    check_churn(result(reset(T0, 2.5), reset(T0, 3.0)), NIC0, churn_at=2.0)


def test_errors_that_began_before_the_churn_are_not_blamed_on_it() -> None:
    """A connection that died before anything churned is a load failure, not churn."""
    with pytest.raises(DriverFailure, match="before the churn of ua-test0 began"):
        check_churn(result(reset(T0, 0.4)), NIC0, churn_at=2.0)


def test_errors_on_another_nic_are_the_drivers() -> None:
    with pytest.raises(DriverFailure, match="broke connections on another NIC"):
        check_churn(result(reset(T1, 2.5)), NIC0, churn_at=2.0)


def test_every_load_uses_the_documented_budgets() -> None:
    """No scenario has its own first-echo or stall deadline (they used to be 2, 5, 10 s)."""
    spec = _spec((NIC0, NIC1), connections=2, duration=1.0)
    assert spec.connect_timeout == budgets.FIRST_ECHO.seconds
    assert spec.stall_timeout == budgets.STALL.seconds
