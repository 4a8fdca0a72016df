"""The second hypervisor host of the multi-host lab (lab/nshost.py), for real.

A namespace host with its own libvirtd, virtlogd and sshd, reached from a controller
namespace of the test's own (``dlctl2``: a sandbox other sessions use is never touched)
over a veth pair: libvirt's remote protocol over real SSH with the host key pinned,
the storage API upload, an SSH direct-tcpip channel to a guest-like address that only
the host can reach, and a stop that leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from labtier import require_lab_host

from lab import netns
from lab.errors import LabFailure
from lab.nshost import HostSpec, NamespaceHost
from lab.sandbox import RUN_DIR, wait_gone

CONTROLLER_NS = "dlctl2"
#: a guest-like network (a bridge, as libvirt makes) inside the host only: the controller
#: has no route to it
GUEST_NET_ADDR = "192.168.200.129/25"
GUEST_ADDR = GUEST_NET_ADDR.split("/")[0]
POOL_PATH = "/var/lib/libvirt/images/dl-nshost-test"
UPLOAD_MIB = 32

POOL_XML = f"""<pool type='dir'><name>dl-nshost-test</name>
<target><path>{POOL_PATH}</path></target></pool>"""
VOL_XML = f"""<volume><name>upload.raw</name><capacity unit='MiB'>{UPLOAD_MIB}</capacity>
<target><format type='raw'/></target></volume>"""

#: accepts one connection on argv[1]:argv[2] and answers with what it got, upper-cased
ECHO = """import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); c.sendall(c.recv(100).upper()); c.close()
"""

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors arrive as exceptions


@pytest.fixture
def controller() -> Iterator[str]:
    require_lab_host("sshd", "nsenter", "ssh-keygen")
    netns.delete(CONTROLLER_NS)  # the test's own namespace, left by a killed run
    netns.create(CONTROLLER_NS)
    try:
        yield CONTROLLER_NS
    finally:
        netns.delete(CONTROLLER_NS)


@pytest.fixture
def host2(controller: str) -> Iterator[NamespaceHost]:
    host = NamespaceHost(HostSpec(controller_netns=controller,
                                  run_dir=RUN_DIR / "hosts" / "host2-test"))
    try:
        host.start()
        yield host
    finally:
        host.stop()


def _open(host: NamespaceHost, uri: str) -> libvirt.virConnect:
    """libvirt.open from the controller's namespace (libvirt's ssh child is made there)."""
    with netns.inside(host.spec.controller_netns):
        return libvirt.open(uri)


def test_libvirt_over_ssh_uploads_a_volume(host2: NamespaceHost) -> None:
    started = time.monotonic()
    conn = _open(host2, host2.uri("ssh"))
    connect_s = time.monotonic() - started
    try:
        assert conn.getLibVersion() >= 9_000_000
        pool = conn.storagePoolDefineXML(POOL_XML)
        pool.build()
        pool.create()
        try:
            rate = _upload_and_check(conn, pool, host2)
        finally:
            pool.destroy()
            pool.undefine()
        assert "dl-nshost-test" not in conn.listAllStoragePools()
    finally:
        conn.close()
    print(f"qemu+ssh: connect {connect_s * 1000:.0f} ms, upload {rate:.0f} MiB/s")


def test_libssh_transport_checks_its_own_known_hosts(host2: NamespaceHost) -> None:
    """qemu+libssh takes known_hosts itself (qemu+ssh ignores that parameter). Its stream
    downloads stall for 10-20 s here (libssh buffering), so the lab uses qemu+ssh."""
    conn = _open(host2, host2.uri("libssh"))
    try:
        assert conn.getLibVersion() >= 9_000_000
        assert conn.listAllStoragePools() == []  # the host's own /etc/libvirt: no pools
    finally:
        conn.close()


def _upload_and_check(conn: libvirt.virConnect, pool: libvirt.virStoragePool,
                      host: NamespaceHost) -> float:
    """Upload UPLOAD_MIB through the storage API, read it back, delete it: MiB/s up."""
    data = os.urandom(UPLOAD_MIB << 20)
    vol = pool.createXML(VOL_XML, 0)
    started = time.monotonic()
    stream = conn.newStream(0)
    vol.upload(stream, 0, len(data), 0)
    for off in range(0, len(data), 1 << 20):
        stream.send(data[off:off + (1 << 20)])
    stream.finish()
    rate = UPLOAD_MIB / (time.monotonic() - started)
    pool.refresh(0)
    assert pool.listVolumes() == ["upload.raw"]
    # it landed in the host's private /var/lib/libvirt, not in the machine's
    private = host.spec.run_dir / "root" / POOL_PATH.lstrip("/") / "upload.raw"
    assert hashlib.sha256(private.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert not Path(POOL_PATH).exists()
    back = conn.newStream(0)
    vol.download(back, 0, 4096, 0)
    assert back.recv(4096) == data[:4096]
    back.finish()
    vol.delete(0)
    pool.refresh(0)
    assert pool.listVolumes() == []
    return rate


@pytest.mark.parametrize("transport", ["ssh", "libssh"])
def test_a_host_key_other_than_the_pinned_one_is_refused(host2: NamespaceHost,
                                                         transport: str) -> None:
    other = host2.ssh.client_key.with_suffix(".pub").read_text().split()[:2]
    host2.ssh.known_hosts.write_text(f"{host2.spec.addr} {other[0]} {other[1]}\n")
    with pytest.raises(libvirt.libvirtError, match=r"(?i)host key|identification"):
        _open(host2, host2.uri(transport))
    with pytest.raises(LabFailure, match=r"not found in known_hosts|does not match"):
        host2.ssh_client().close()


def test_direct_tcpip_reaches_a_guest_address_only_through_the_host(
        host2: NamespaceHost) -> None:
    ns = host2.spec.netns
    netns.ip("-n", ns, "link", "add", "dlguest0", "type", "bridge")
    netns.ip("-n", ns, "addr", "add", GUEST_NET_ADDR, "dev", "dlguest0")
    netns.ip("-n", ns, "link", "set", "dlguest0", "up")
    listener = subprocess.Popen(host2.in_host([sys.executable, "-c", ECHO, GUEST_ADDR, "7777"]),
                                stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout is not None and listener.stdout.readline() == "ready\n"
        with netns.inside(host2.spec.controller_netns), \
                pytest.raises(OSError), socket.create_connection((GUEST_ADDR, 7777), timeout=2):
            pass
        client = host2.ssh_client()
        try:
            transport = client.get_transport()
            assert transport is not None
            chan = transport.open_channel("direct-tcpip", (GUEST_ADDR, 7777),
                                          ("127.0.0.1", 0), timeout=10)
            chan.settimeout(10)
            chan.sendall(b"through host2")
            assert chan.recv(100) == b"THROUGH HOST2"
            chan.close()
        finally:
            client.close()
        assert listener.wait(timeout=10) == 0
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait(timeout=10)


def test_a_host_cut_off_by_a_new_controller_namespace_is_linked_again(
        host2: NamespaceHost) -> None:
    """The sandbox stopped and started again (its namespace made anew) takes the
    controller's end of the veth pair with it: the running host, its libvirtd and
    sshd are untouched but unreachable until relink() makes the pair again."""
    ctl = host2.spec.controller_netns
    assert host2.linked() and host2.relink() is False  # nothing to do
    netns.delete(ctl)
    with pytest.raises(LabFailure, match=f"controller namespace {ctl} does not exist"):
        host2.relink()
    netns.create(ctl)
    assert not host2.linked() and host2.running()
    with netns.inside(ctl), pytest.raises(OSError):  # no route to it now
        socket.create_connection((host2.spec.addr, 22), timeout=2).close()
    assert host2.relink() is True
    assert host2.linked() and host2.spec.veth[0] in netns.links(ctl, "veth")
    conn = _open(host2, host2.uri("ssh"))  # the same sshd and libvirtd answer again
    try:
        assert conn.getLibVersion() >= 9_000_000
    finally:
        conn.close()


def test_stop_leaves_nothing(controller: str) -> None:
    run_dir = RUN_DIR / "hosts" / "host2-test"
    host = NamespaceHost(HostSpec(controller_netns=controller, run_dir=run_dir))
    try:
        st = host.start()
        conn = _open(host, host.uri("ssh"))  # a live session: sshd children, ssh helper
        client = host.ssh_client()
        pids = [st.libvirtd_pid, st.virtlogd_pid, st.sshd_pid, *netns.pids(st.netns)]
        assert len(pids) > 3, "the sessions run no process in the host's namespace"
    finally:
        stopped = host.stop()
    conn.close()
    client.close()
    assert any(line.startswith("libvirtd") for line in stopped), stopped
    assert not netns.exists(st.netns)
    assert wait_gone(pids) == []
    assert host.spec.veth[0] not in netns.links(controller)
    assert not run_dir.exists()
    assert not run_dir.parent.exists()  # hosts/: no other namespace host here
    for mountpoint in st.made_mountpoints:
        assert not Path(mountpoint).exists(), mountpoint
    assert _mounts_naming(run_dir) == []


def _mounts_naming(run_dir: Path) -> list[str]:
    """Processes (any mount namespace) that still see a mount of ``run_dir``."""
    holders = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if str(run_dir) in (proc / "mountinfo").read_text():
                holders.append(proc.name)
        except OSError:
            continue
    return holders
