"""`lab up` makes a host's networks while its image uploads and its VMs restore from the
template (lab.provision.alongside_networks): real threads, plain functions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from lab.errors import LabFailure, NotOurs
from lab.provision import NetworksFailed, alongside_networks

WAIT_S = 10.0  # far above any scheduling delay; a broken overlap fails instead of hanging


def test_the_work_runs_while_the_networks_are_being_made() -> None:
    started = threading.Event()

    def make() -> None:  # done only once the work has started: a serial order deadlocks
        assert started.wait(WAIT_S), "the work did not start while the networks were made"

    def work(ready: Callable[[], None]) -> str:
        started.set()
        ready()
        return "up"

    assert alongside_networks(make, work) == "up"


def test_the_wait_returns_only_once_the_networks_exist() -> None:
    made: list[float] = []

    def make() -> None:
        time.sleep(0.2)
        made.append(time.monotonic())

    def work(ready: Callable[[], None]) -> float:
        ready()
        assert made, "the wait returned before the networks were made"
        return time.monotonic() - made[0]

    assert alongside_networks(make, work) >= 0


def test_a_vm_waiting_for_failed_networks_stops_and_their_own_error_is_raised() -> None:
    seen: list[BaseException] = []

    def make() -> None:
        raise NotOurs("network dl-test1 exists but is not this lab's", hint="rename the lab")

    def work(ready: Callable[[], None]) -> None:
        try:
            ready()
        except LabFailure as exc:
            seen.append(exc)
            raise LabFailure("1 of 1 VMs did not come up") from exc

    with pytest.raises(NotOurs, match="dl-test1 exists but is not this lab's"):
        alongside_networks(make, work)
    assert len(seen) == 1 and isinstance(seen[0], NetworksFailed)
    assert "dl-test1" in str(seen[0])


def test_failed_networks_are_an_error_even_when_no_vm_waited_for_them() -> None:
    def make() -> None:
        raise NotOurs("network dl-mgmt exists but is not this lab's")

    with pytest.raises(NotOurs, match="dl-mgmt"):
        alongside_networks(make, lambda ready: "nothing waited")


def test_the_works_own_error_is_raised_when_the_networks_were_made() -> None:
    made = threading.Event()

    def work(ready: Callable[[], None]) -> None:
        raise LabFailure("the image upload failed")

    with pytest.raises(LabFailure, match="the image upload failed"):
        alongside_networks(made.set, work)
    assert made.is_set(), "the networks' thread was not waited for"
