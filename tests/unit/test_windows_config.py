"""Windows keys of lab.toml: one ConfigError naming the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.config import load_config
from lab.errors import ConfigError

BASE = ("[image]\nkind = 'windows'\nwindows_disk = 'win.qcow2'\nwindows_ssh_key = 'id'\n"
        "windows_host_key = 'host.pub'\n")
GOOD_VMS = "[vms]\nmemory_mib = 4096\ntest_nics = ['e1000e', 'e1000e']\n"


def _load(tmp_path: Path, text: str) -> Path:
    (tmp_path / "win.qcow2").write_bytes(b"QFI\xfb")  # qcow2 magic: checked at load
    path = tmp_path / "lab.toml"
    path.write_text(text)
    return path


def test_a_good_windows_config_loads(tmp_path: Path) -> None:
    cfg = load_config(_load(tmp_path, BASE + "windows_nic_drivers = ['virtio']\n" +
                            GOOD_VMS.replace("'e1000e', 'e1000e'", "'virtio', 'e1000e'")))
    assert cfg.image.windows_user == "Administrator"
    assert cfg.image.windows_disk_bus == "sata"
    assert cfg.image.windows_ovmf_code == "/usr/share/OVMF/OVMF_CODE_4M.fd"


BAD = [
    (BASE + "[vms]\ntest_nics = ['e1000e']\n", "vms.memory_mib", "memory_mib = 2048"),
    (BASE + "[vms]\nmemory_mib = 4096\ntest_nics = ['virtio']\n", "vms.test_nics",
     "windows_nic_drivers"),
    (BASE + "[vms]\nmemory_mib = 4096\ntest_nics = ['vmxnet3']\n", "vms.test_nics",
     "use e1000e"),
    (BASE.replace("windows_ssh_key = 'id'\n", "") + GOOD_VMS, "image.windows_ssh_key",
     "golden image"),
    (BASE + "windows_disk_bus = 'ide'\n" + GOOD_VMS, "image.windows_disk_bus", "sata"),
    (BASE + "windows_version = '7'\n" + GOOD_VMS, "image.windows_version", "server2022"),
    (BASE + "windows_verifier = ['wsk echo']\n" + GOOD_VMS, "image.windows_verifier",
     "without .sys"),
    (BASE + "windows_nic_drivers = ['ne2000']\n" + GOOD_VMS, "image.windows_nic_drivers",
     "virtio"),
    (BASE + "windows_user = 'a b'\n" + GOOD_VMS, "image.windows_user", "Administrator"),
]


@pytest.mark.parametrize(("text", "key", "fix"), BAD)
def test_windows_errors_name_file_key_and_fix(tmp_path: Path, text: str, key: str,
                                              fix: str) -> None:
    path = _load(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and f"[{key}]" in message and fix in message
    assert len(info.value.summary.splitlines()) == 1


def test_micro_guests_keep_the_small_default(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text("[vms]\nmemory_mib = 256\ntest_nics = ['virtio']\n")
    assert load_config(path).vms.memory_mib == 256
