"""The Windows kind's host-side image checks and the handle's evidence and unplug logic."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from test_windows_deploy import ScriptedShell, ok
from test_windows_dump import header64

from lab.config import parse_config
from lab.errors import ConfigError, LabFailure
from lab.guests.base import CommandResult
from lab.guests.windows import Windows, WindowsGuest
from lab.guests.windows_evidence import collect_crash
from lab.guests.windows_image import ImageUnusable, cached_digest, check_image, host_key_line
from lab.progress import Progress

ED25519 = "ssh-ed25519 " + base64.b64encode(
    b"\0\0\0\x0bssh-ed25519\0\0\0\x20" + bytes(range(32))).decode()


def _setup(tmp_path: Path, fmt: str = "qcow2", code: str = "OVMF_CODE_4M.fd") -> Windows:
    subprocess.run(["qemu-img", "create", "-f", fmt, str(tmp_path / "win.qcow2"), "64M"],
                   check=True, capture_output=True, timeout=60)
    (tmp_path / code).write_bytes(b"\0" * 16)
    (tmp_path / "VARS.fd").write_bytes(b"\0" * 16)
    (tmp_path / "id").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n")
    (tmp_path / "host.pub").write_text(ED25519 + " root@win\n")
    raw = {"image": {"kind": "windows", "windows_disk": "win.qcow2", "windows_ssh_key": "id",
                     "windows_host_key": "host.pub", "windows_ovmf_code": code,
                     "windows_ovmf_vars": "VARS.fd"},
           "vms": {"memory_mib": 4096, "test_nics": ["e1000e"]},
           "lab": {"state_dir": "state"}}
    return Windows(parse_config(raw, tmp_path / "lab.toml"))


def test_check_accepts_a_complete_setup(tmp_path: Path) -> None:
    kind = _setup(tmp_path)
    facts = check_image(kind.config)
    assert facts.virtual_size == 64 << 20
    assert facts.host_key_line == ED25519
    assert not (tmp_path / "state").exists()  # check creates nothing


def test_check_refuses_raw_images_and_secure_boot_firmware(tmp_path: Path) -> None:
    for sub in "abc":
        (tmp_path / sub).mkdir()
    with pytest.raises(ConfigError, match="not a qcow2"):  # refused at load already
        _setup(tmp_path / "a", fmt="raw")
    kind = _setup(tmp_path / "c")  # a qcow2 at load, replaced by a raw image later
    subprocess.run(["qemu-img", "create", "-f", "raw", str(tmp_path / "c" / "win.qcow2"), "64M"],
                   check=True, capture_output=True, timeout=60)
    with pytest.raises(ImageUnusable, match="not qcow2"):
        check_image(kind.config)
    with pytest.raises(ImageUnusable, match="Secure Boot"):
        check_image(_setup(tmp_path / "b", code="OVMF_CODE_4M.secboot.fd").config)


@pytest.mark.parametrize("text", ["", "ssh-ed25519", "ssh-dss AAAA", "ssh-ed25519 !!!",
                                  "ssh-rsa " + ED25519.split()[1]])
def test_host_key_must_be_a_valid_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "k.pub"
    path.write_text(text)
    with pytest.raises(ImageUnusable):
        host_key_line(path)


def test_digest_is_cached_by_path_size_mtime(tmp_path: Path) -> None:
    disk = tmp_path / "d.img"
    disk.write_bytes(b"abc")
    progress = Progress(stream=open("/dev/null", "w"))  # noqa: SIM115
    first = cached_digest(disk, tmp_path / "s", progress)
    assert first == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    (tmp_path / "s" / "windows-image.json").write_text(
        (tmp_path / "s" / "windows-image.json").read_text().replace(first, "f" * 64))
    assert cached_digest(disk, tmp_path / "s", progress) == "f" * 64
    disk.write_bytes(b"abcd")
    assert cached_digest(disk, tmp_path / "s", progress) != "f" * 64


def test_lists_mac_follows_pnp_presence() -> None:
    adapters = ('{"Name":"Ethernet 2","ifIndex":7,"MacAddress":"52-54-00-AB-CD-01",'
                '"PnPDeviceID":"PCI\\\\VEN_8086&DEV_10D3\\\\3&9"}')
    shell = ScriptedShell({"Get-NetAdapter": ok("a", adapters), "Get-NetIPAddress": ok("i", ""),
                           "Get-PnpDevice": ok("p", '{"Present":true}')})
    guest = WindowsGuest(shell)
    assert guest.lists_mac("52:54:00:ab:cd:01")
    shell.answers["Get-NetAdapter"] = ok("a", "")
    assert guest.lists_mac("52:54:00:AB:CD:01")  # removal not finished: still Present
    assert "Get-PnpDevice -InstanceId 'PCI\\VEN_8086&DEV_10D3\\3&9'" in shell.sent[-1]
    shell.answers["Get-PnpDevice"] = ok("p", '{"Present":false}')
    assert not guest.lists_mac("52:54:00:ab:cd:01")


class DumpShell(ScriptedShell):
    def get(self, remote: str, local: Path) -> None:
        self.puts.append(remote)
        local.write_bytes(header64(0x80, (0x4F4454, 0, 0, 0), 2))


def _crashed_guest() -> tuple[WindowsGuest, DumpShell]:
    event = ('{"Id":1001,"Message":"The computer has rebooted from a bugcheck.  The bugcheck '
             'was: 0x00000080 (0x00000000004f4454, 0x0000000000000000, 0x0000000000000000, '
             '0x0000000000000000). A dump was saved in: C:\\\\Windows\\\\MEMORY.DMP."}')
    shell = DumpShell({"Get-CimInstance": ok("b", '{"LastBootUpTime":"\\/Date(1767225600000)\\/"}'),
                       "Get-WinEvent -FilterHashtable": ok("e", event),
                       "Get-ChildItem -Path": ok("d", '[{"FullName":"C:\\\\Windows\\\\MEMORY.DMP",'
                                                      '"Length":8192}]')})
    return WindowsGuest(shell), shell


def test_hang_evidence_injects_an_nmi_and_decodes_the_dump(tmp_path: Path) -> None:
    guest, shell = _crashed_guest()
    calls: list[str] = []
    notes = guest.hang_evidence(tmp_path, lambda: calls.append("nmi"))
    assert calls == ["nmi"]
    assert notes[0] == "bugcheck 0x00000080 NMI_HARDWARE_FAILURE"
    assert shell.puts == ["C:/Windows/MEMORY.DMP"]
    summary = (tmp_path / "bugcheck.txt").read_text()
    assert "event 1001: 0x00000080 NMI_HARDWARE_FAILURE" in summary
    assert "parameters: 0x00000000004F4454" in summary
    assert WindowsGuest.host_dump_on_crash is False


def test_crash_evidence_reports_a_guest_that_never_returns(tmp_path: Path) -> None:
    def down(cmd: str) -> CommandResult:
        raise LabFailure("ssh lost")

    guest = WindowsGuest(ScriptedShell({"Get-CimInstance": down}))
    result = collect_crash(guest, tmp_path, deadline=0.5)
    assert result[0].startswith("Windows crash evidence unavailable")
