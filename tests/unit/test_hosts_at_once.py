"""`lab up` brings every host's VMs up at once (lab.provision._on_every_host), and each
host's lab-wide progress lines name that host (Progress.on_host)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import pytest

from lab import inventory
from lab.errors import LabFailure, NotOurs
from lab.progress import Progress
from lab.provision import _on_every_host

Job = Callable[[], list[inventory.VmEntry]]


def _entry(name: str) -> inventory.VmEntry:
    return inventory.VmEntry(name=name, domain=f"d-{name}", snapshot="clean",
                             console_log=f"/tmp/{name}.log", nics=())


def test_hosts_run_at_the_same_time_and_their_vms_are_all_returned() -> None:
    # each job waits for the other: run one after the other, the barrier breaks
    both = threading.Barrier(2, timeout=10)

    def job(name: str) -> Job:
        def run() -> list[inventory.VmEntry]:
            both.wait()
            return [_entry(name)]
        return run

    entries = _on_every_host({"local": job("vm1"), "host2": job("vm3")})
    assert sorted(e.name for e in entries) == ["vm1", "vm3"]


def test_one_host_failing_is_its_own_error_after_the_others_finished() -> None:
    finished = threading.Event()

    def fails() -> list[inventory.VmEntry]:
        raise NotOurs("domain x exists but is not this lab's", hint="rename the lab")

    def slow() -> list[inventory.VmEntry]:
        finished.wait(0.3)  # still working when the other host has failed
        finished.set()
        return [_entry("vm1")]

    with pytest.raises(NotOurs) as raised:  # the sub-kind kept, not wrapped
        _on_every_host({"host2": fails, "local": slow})
    assert finished.is_set()
    assert "not this lab's" in str(raised.value)


def test_several_hosts_failing_is_one_lab_failure_naming_each() -> None:
    def fails(why: str) -> Job:
        def run() -> list[inventory.VmEntry]:
            raise LabFailure(why)
        return run

    with pytest.raises(LabFailure) as raised:
        _on_every_host({"local": lambda: [_entry("vm1")], "host2": fails("libvirtd gone"),
                        "host3": fails("pool full")})
    text = str(raised.value)
    assert "2 of 3 hosts did not come up" in text
    assert "host2: libvirtd gone" in text and "host3: pool full" in text
    assert "lab down" in (raised.value.hint or "")


def test_a_single_host_runs_in_the_calling_thread() -> None:
    seen: list[str] = []

    def job() -> list[inventory.VmEntry]:
        seen.append(threading.current_thread().name)
        return []

    _on_every_host({"local": job})
    assert seen == [threading.current_thread().name]


def test_a_hosts_lines_name_it_and_share_the_clock() -> None:
    out = io.StringIO()
    progress = Progress(stream=out)
    on_host2 = progress.on_host("host2")
    progress("network a created")
    on_host2("network a created")
    on_host2("SSH answers", "vm3")  # a VM's own lines keep their subject
    on_host2.for_subject("vm4")("defined")
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == ["lab: network a created", "host2: network a created",
                     "vm3: SSH answers", "vm4: defined"]
