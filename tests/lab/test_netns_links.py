"""Removing a device that is going away by itself (lab.netns.delete_link), for real.

When a namespace is deleted, the kernel destroys its devices (and the peers of its
veths, in other namespaces) asynchronously. A namespace host relinked right after the
controller's namespace was made anew found the old host end of its veth pair listed,
and the kernel had removed it by the time `ip link del` ran: "Cannot find device" (a CI
failure of test_nshost's relink test). delete_link treats a device that vanished between
the listing and the delete as deleted, waits until it is gone, and still fails on a
device it cannot remove.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from labtier import require_lab_host

from lab import netns
from lab.errors import LabFailure

NS_A, NS_B = "dlrca", "dlrcb"
END_A, END_B = "dlrc0", "dlrc1"


@pytest.fixture
def spaces() -> Iterator[None]:
    require_lab_host()
    for ns in (NS_A, NS_B):
        netns.delete(ns)  # left by a killed run
        netns.create(ns)
    try:
        yield
    finally:
        for ns in (NS_A, NS_B):
            netns.delete(ns)


def _pair() -> None:
    netns.ip("-n", NS_A, "link", "add", END_A, "type", "veth", "peer", "name", END_B,
             "netns", NS_B)


def test_a_device_gone_between_listing_and_delete_is_deleted(
        spaces: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race made certain: the first listing still shows the device, which is gone
    already (the kernel's late cleanup); the real `ip link del` then finds nothing."""
    real = netns.links
    stale = [True]

    def links(name: str, kind: str | None = None) -> list[str]:
        if stale.pop() if stale else False:
            return [*real(name, kind), END_B]
        return real(name, kind)
    monkeypatch.setattr(netns, "links", links)
    assert END_B not in real(NS_B)
    assert netns.delete_link(NS_B, END_B) is True  # it was listed


def test_the_peer_of_a_deleted_namespace_is_removed_or_found_gone(spaces: None) -> None:
    """Delete one end's namespace, then at once the other end: no error, and it is gone
    when delete_link returns (20 times: the kernel's cleanup races the delete)."""
    for _ in range(20):
        netns.create(NS_A)
        _pair()
        netns.delete(NS_A)
        netns.delete_link(NS_B, END_B)
        assert END_B not in netns.links(NS_B)


def test_a_device_that_cannot_be_removed_is_an_error(spaces: None) -> None:
    """Loopback cannot be deleted: the error comes after the deadline, not a loop."""
    with pytest.raises(LabFailure, match="link del lo"):
        netns.delete_link(NS_B, "lo", timeout=0.5)
