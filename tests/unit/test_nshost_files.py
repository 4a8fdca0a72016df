"""The namespace host's SSH material and URIs (lab/nshost.py), checked by the real tools:
`sshd -t` accepts the server config, `ssh -G` shows the client pins the lab's key files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from lab.caps_cpu import probing_cpu, unpin
from lab.errors import LabFailure
from lab.nshost import (
    SSHD,
    HostSpec,
    NamespaceHost,
    prepare_ssh,
    seed_qemu_caps,
)


def _spec(tmp_path: Path) -> HostSpec:
    return HostSpec(name="host2", controller_netns="dlctl2", subnet="192.168.200.0/30",
                    run_dir=tmp_path / "host2")


def test_addresses_and_veth_names() -> None:
    spec = HostSpec(name="a-very-long-host-name")
    assert (spec.controller_addr, spec.addr, spec.prefix) == ("192.168.200.1", "192.168.200.2", 30)
    assert all(len(name) <= 15 for name in spec.veth)  # Linux IFNAMSIZ
    assert spec.veth[0] != spec.veth[1]
    with pytest.raises(LabFailure, match="no room"):
        _ = HostSpec(subnet="192.168.200.4/32").addr


@pytest.mark.skipif(not SSHD.exists(), reason="openssh-server is not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="a private mount namespace needs root")
def test_sshd_accepts_its_config_and_ssh_pins_the_lab_files(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    files = prepare_ssh(spec)
    # sshd -t wants its privilege separation dir: a fresh /run in a private mount namespace
    check = f"mount -t tmpfs tmpfs /run && mkdir /run/sshd && {SSHD} -t -f {files.sshd_config}"
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", check],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    effective = subprocess.run([str(files.ssh_command), "-G", spec.addr], check=True,
                               capture_output=True, text=True, timeout=30).stdout.splitlines()
    assert f"userknownhostsfile {files.known_hosts}" in effective
    assert "stricthostkeychecking true" in effective
    assert f"identityfile {files.client_key}" in effective
    assert files.known_hosts.read_text().startswith(f"{spec.addr} ssh-ed25519 ")
    assert files.client_key.stat().st_mode & 0o077 == 0


def test_uris_name_the_lab_key_and_pin_the_host_key(tmp_path: Path) -> None:
    host = NamespaceHost(_spec(tmp_path))
    ssh = urlsplit(host.uri("ssh"))
    assert (ssh.scheme, ssh.netloc, ssh.path) == ("qemu+ssh", "root@192.168.200.2", "/system")
    query = parse_qs(ssh.query)
    assert query["keyfile"] == [str(host.ssh.client_key)]
    assert query["command"] == [str(host.ssh.ssh_command)]  # the pinning ssh wrapper
    assert query["no_verify"] == ["0"]
    libssh = parse_qs(urlsplit(host.uri("libssh")).query)
    assert libssh["known_hosts"] == [str(host.ssh.known_hosts)]
    assert libssh["known_hosts_verify"] == ["normal"]
    with pytest.raises(LabFailure, match="unknown transport"):
        host.uri("tls")


def _caps(emulator: Path, ctime: int, leaves: str = "") -> str:
    """The head of a libvirt QEMU capabilities cache file, as libvirt 9.0 writes it."""
    return (f"<qemuCaps>\n  <emulator>{emulator}</emulator>\n  <qemuctime>{ctime}</qemuctime>\n"
            f"  <selfvers>9000000</selfvers>\n  <cpudata arch='x86'>\n{leaves}  </cpudata>\n"
            "</qemuCaps>\n")


def test_only_capabilities_of_the_binary_as_it_is_are_seeded(tmp_path: Path) -> None:
    binary = tmp_path / "qemu-system-x86_64"
    binary.write_bytes(b"\x7fELF")
    now = int(binary.stat().st_ctime)
    cache, dest = tmp_path / "cache", tmp_path / "host" / "capabilities"
    cache.mkdir()
    files = {"fresh.xml": _caps(binary, now), "stale.xml": _caps(binary, now - 60),
             "gone.xml": _caps(tmp_path / "qemu-system-arm", now), "garbage.xml": "<x/>"}
    for name, text in files.items():
        (cache / name).write_text(text)
        (cache / name).chmod(0o600)
    assert seed_qemu_caps(dest, cache) == [str(binary)]
    assert sorted(p.name for p in dest.iterdir()) == ["fresh.xml"]
    assert (dest / "fresh.xml").read_text() == files["fresh.xml"]
    assert (dest / "fresh.xml").stat().st_mode & 0o777 == 0o600
    assert seed_qemu_caps(tmp_path / "other", tmp_path / "no-cache") == []


def _apic_ids() -> dict[int, int]:
    """CPU number -> its APIC ID, from /proc/cpuinfo."""
    found: dict[int, int] = {}
    cpu = -1
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "processor":
            cpu = int(value)
        elif key == "apicid":
            found[cpu] = int(value)
    return found


@pytest.mark.skipif(not _apic_ids(), reason="no APIC IDs in /proc/cpuinfo (not x86)")
def test_libvirtd_starts_on_the_cpu_its_capabilities_were_probed_on(tmp_path: Path) -> None:
    """CPUID leaf 0x1f's EDX is the x2APIC ID of the probing CPU; all-zero leaves are
    left out (ID 0); a CPU without that leaf, or another emulator's file: no pinning."""
    ids = _apic_ids()
    cpu, apic = max(ids.items())
    top = "    <cpuid eax_in='0x00000000' ecx_in='0x00000000' eax='0x00000024' ebx='0x0'/>\n"
    x2apic = ("    <cpuid eax_in='0x0000001f' ecx_in='0x00000000' eax='0x00000000' "
              f"ebx='0x00000000' ecx='0x00000000' edx='{apic:#010x}'/>\n")
    emulator = Path("/usr/bin/qemu-system-x86_64")
    cases = [(_caps(emulator, 1, top + x2apic), cpu),
             (_caps(emulator, 1, top), next(c for c, a in ids.items() if a == 0)),
             (_caps(emulator, 1, top.replace("0x00000024", "0x0000001e") + x2apic), None),
             (_caps(Path("/usr/bin/qemu-system-aarch64"), 1, top + x2apic), None)]
    for i, (text, expected) in enumerate(cases):
        cache = tmp_path / str(i)
        cache.mkdir()
        (cache / "caps.xml").write_text(text)
        assert probing_cpu(cache) == expected, text


def test_unpin_gives_every_thread_all_cpus_back() -> None:
    """A process pinned to one CPU (threads included) runs on all of ours again."""
    ours = os.sched_getaffinity(0)
    script = ("import threading, time\n"
              "for _ in range(3): threading.Thread(target=time.sleep, args=(30,), daemon=True)"
              ".start()\nprint('ready', flush=True); time.sleep(30)\n")
    proc = subprocess.Popen(["taskset", "-c", str(min(ours)), sys.executable, "-c", script],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        tasks = [int(t.name) for t in Path(f"/proc/{proc.pid}/task").iterdir()]
        assert len(tasks) == 4 and all(os.sched_getaffinity(t) == {min(ours)} for t in tasks)
        unpin(proc.pid, ours)
        assert all(os.sched_getaffinity(t) == ours for t in tasks)
    finally:
        proc.kill()
        proc.wait(timeout=10)
