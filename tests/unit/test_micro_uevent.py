"""The micro guest's hotplug handler (images/linux-micro/lab-uevent.c), built as the
image builder builds it and fed kernel uevents in its --explain mode, which says what it
would do and does nothing (on this host it must neither load modules nor touch NICs).

The events are written as the kernel sends them on NETLINK_KOBJECT_UEVENT
(Documentation/ABI: "ACTION@DEVPATH", then NUL-separated KEY=VALUE pairs), with values
taken from a real virtio-net hot-plug, not from the handler's source.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab.guests.micro_image import UEVENT_SOURCE, build_static

VIRTIO_NET_PCI = "pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00"
LO_MAC = Path("/sys/class/net/lo/address").read_text().strip()


@pytest.fixture(scope="module")
def handler(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = tmp_path_factory.mktemp("uevent") / "lab-uevent"
    build_static(UEVENT_SOURCE, binary)
    return binary


def event(header: str, **values: str) -> bytes:
    return (header + "\0" + "".join(f"{k}={v}\0" for k, v in values.items())).encode()


def explain(handler: Path, message: bytes, nets: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"} | ({"LAB_EXPLAIN_NETS": nets} if nets is not None else {})
    return subprocess.run([str(handler), "--explain"], input=message.decode(),
                          capture_output=True, text=True, timeout=30, env=env)


def test_a_pci_device_added_loads_its_driver(handler: Path) -> None:
    res = explain(handler, event("add@/devices/pci0000:00/0000:00:01.3/0000:04:00.0",
                                 ACTION="add", DEVPATH="/devices/pci0000:00/0000:00:01.3/"
                                 "0000:04:00.0", SUBSYSTEM="pci", MODALIAS=VIRTIO_NET_PCI,
                                 SEQNUM="766"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"modprobe -q {VIRTIO_NET_PCI}"]


def test_a_bind_or_remove_loads_nothing(handler: Path) -> None:
    for action in ("bind", "remove", "change"):
        res = explain(handler, event(f"{action}@/devices/x", ACTION=action,
                                     SUBSYSTEM="pci", MODALIAS=VIRTIO_NET_PCI, DRIVER="v"))
        assert res.returncode == 0 and res.stdout == "", (action, res.stdout)


def test_a_nic_of_the_lab_gets_its_address(handler: Path) -> None:
    nets = f"52:54:00:7f:00:09=192.0.2.9/24,{LO_MAC}=192.0.2.7/28"
    res = explain(handler, event("add@/devices/virtual/net/lo", ACTION="add",
                                 SUBSYSTEM="net", INTERFACE="lo", IFINDEX="1"), nets)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["netup lo 192.0.2.7/28"]


def test_a_nic_the_lab_does_not_know_stays_down(handler: Path) -> None:
    for nets in ("52:54:00:7f:00:09=192.0.2.9/24", f"{LO_MAC}=192.0.2.300/24",
                 f"{LO_MAC}=192.0.2.7/33", f"{LO_MAC}=192.0.2.7", ""):
        res = explain(handler, event("add@/devices/virtual/net/lo", ACTION="add",
                                     SUBSYSTEM="net", INTERFACE="lo"), nets)
        assert res.stdout == "", (nets, res.stdout)
    res = explain(handler, event("add@/devices/virtual/net/x", ACTION="add",
                                 SUBSYSTEM="net", INTERFACE="../../etc"), f"{LO_MAC}=192.0.2.7/24")
    assert res.stdout == ""


def test_device_nodes_go_to_mdev(handler: Path) -> None:
    for action in ("add", "remove"):
        res = explain(handler, event(f"{action}@/devices/virtual/tty/ttyS1", ACTION=action,
                                     SUBSYSTEM="tty", DEVNAME="ttyS1", MAJOR="4", MINOR="65"))
        assert res.stdout.splitlines() == ["mdev"], (action, res.stdout)


def test_a_queue_event_needs_nothing(handler: Path) -> None:
    """Most of a NIC's eight events (its queues, the virtio device's bind, ...)."""
    res = explain(handler, event("add@/devices/pci0000:00/x/virtio1/net/eth0/queues/rx-0",
                                 ACTION="add", SUBSYSTEM="queues"))
    assert res.returncode == 0 and res.stdout == ""


def test_garbage_is_one_line_and_exit_2(handler: Path) -> None:
    for junk in (b"", b"no-at-sign\0ACTION=add\0", b"add@/x\0NOEQUALS\0"):
        res = explain(handler, junk)
        assert res.returncode == 2, junk
        assert res.stderr.count("\n") == 1 and "not a uevent" in res.stderr
        assert res.stdout == ""


def test_more_variables_than_it_keeps_are_cut_not_overflowed(handler: Path) -> None:
    many = {f"X{i}": "y" * 50 for i in range(200)}
    res = explain(handler, event("add@/devices/virtual/tty/ttyS1", ACTION="add",
                                 DEVNAME="ttyS1", **many))
    assert res.returncode == 0
    assert res.stdout.splitlines() == ["mdev"]
