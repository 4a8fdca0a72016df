"""What a stopped namespace leaves behind (lab.sandbox.stop_stragglers), with real
processes in a network namespace of the test's own: the lab's kinds are stopped, a
shell that ends with them is not reported, anybody else's process is named and left.
And what keeps the sandbox from being stopped: another lab's namespace host joined to
its namespace by a veth pair (lab.teardown._joined)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from labtier import require_lab_host

from lab import netns
from lab.sandbox import Sandbox, _gone, stop_stragglers, wait_gone
from lab.teardown import _joined

NS = "dlstray"


@pytest.fixture
def ns() -> Iterator[str]:
    require_lab_host("nsenter")
    netns.delete(NS)  # left by a killed run
    netns.create(NS)
    try:
        yield NS
    finally:
        netns.delete(NS)


def _in(ns: str, *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_listed(ns: str, count: int) -> list[int]:
    for _ in range(50):
        pids = netns.pids(ns)
        if len(pids) >= count:
            return pids
        subprocess.run(["sleep", "0.1"], check=True)
    raise AssertionError(f"{count} processes never showed in {ns}: {netns.pids(ns)}")


def test_a_shell_ending_with_the_labs_process_is_not_called_somebody_elses(ns: str) -> None:
    # "sleep" plays the lab's daemon; its shell (like a session's login shell under the
    # lab's sshd) ends once it is stopped; "tail" belongs to somebody else
    session = _in(ns, "sh", "-c", "sleep 300; exit 0")
    other = _in(ns, "tail", "-f", "/dev/null")
    try:
        _wait_listed(ns, 3)
        lines = stop_stragglers(ns, frozenset({"sleep"}), set())
        assert any(line.startswith("sleep (pid ") for line in lines), lines
        assert session.wait(5) == 0  # ended with its child
        assert [line for line in lines if "not the lab's" in line] == [
            f"nothing: tail (pid {other.pid}) is not the lab's, left running"], lines
        assert not _gone(other.pid)  # and really left running
    finally:
        for proc in (session, other):
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    assert wait_gone([session.pid, other.pid], 5) == []


def test_a_namespace_host_joined_to_the_sandbox_keeps_it(ns: str) -> None:
    sandbox = Sandbox(netns_name=ns)  # this test's namespace plays the sandbox's
    assert _joined(sandbox) == []  # only lo: nothing joined
    netns.ip("-n", ns, "link", "add", "dlstrayc", "type", "veth", "peer", "name", "dlstrayh")
    netns.ip("-n", ns, "link", "add", "dlstraybr", "type", "bridge")  # a lab network's
    assert sorted(_joined(sandbox)) == ["the link dlstrayc of a namespace host",
                                        "the link dlstrayh of a namespace host"]
