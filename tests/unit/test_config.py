"""lab.toml: defaults, and one clear error (file, key, fix) for every kind of bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lab.config import Acceleration, Machine, load_config, parse_config
from lab.errors import ConfigError, LabFailure
from lab.hypervisor import Hypervisor

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(text)
    return path


def test_defaults_are_four_micro_guests() -> None:
    cfg = parse_config({}, Path("/x/lab.toml"))
    assert cfg.vms.names == ["vm1", "vm2", "vm3", "vm4"]
    assert cfg.lab.acceleration is Acceleration.AUTO
    assert cfg.vms.machine is Machine.Q35
    assert cfg.vms.test_nics


def test_repo_lab_toml_is_valid() -> None:
    cfg = load_config(REPO / "lab.toml")
    assert len(cfg.vms.names) == 4


def test_config_is_frozen() -> None:
    cfg = parse_config({}, Path("/x/lab.toml"))
    with pytest.raises(AttributeError):
        cfg.lab.name = "other"  # type: ignore[misc]


BAD = [
    ("[lab]\nnmae = 'x'\n", "lab.nmae", "did you mean 'name'"),
    ("[vm]\nnames = ['a']\n", "vm", "did you mean 'vms'"),
    ("[vms]\nmemory_mib = '256'\n", "vms.memory_mib", "whole number"),
    ("[vms]\nnames = 'vm1'\n", "vms.names", "names = [...]"),
    ("[vms]\ntest_nics = []\n", "vms.test_nics", "at least one NIC"),
    ("[vms]\nnames = ['vm1', 'vm1']\n", "vms.names", "unique"),
    ("[vms]\ntest_nics = ['ne2000']\n", "vms.test_nics", "virtio"),
    ("[lab]\nacceleration = 'hvf'\n", "lab.acceleration", "auto, kvm, tcg"),
    ("[lab]\nname = 'Lab_1'\n", "lab.name", "lowercase"),
    ("[image]\nkind = 'windows'\nwindows_disk = 'win.qcow2'\n", "image.windows_disk",
     "Windows golden qcow2"),
    ("[network]\nmanagement = '192.168.214.0/24'\n", "network.test[0]", "own subnet"),
    ("[network]\nmanagement = '10.1.2.3/33'\n", "network.management", "192.168.213.0/24"),
    ("[vms]\ntest_nics = ['virtio','virtio','virtio']\n", "network.test", "one subnet per"),
    ("[lab\n", "-", "fix the syntax"),
]


@pytest.mark.parametrize(("text", "key", "fix"), BAD)
def test_bad_input_names_file_key_and_fix(tmp_path: Path, text: str, key: str, fix: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert f"[{key}]" in message
    assert fix in message


def test_missing_config_file_given_explicitly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_cli_prints_one_clear_error_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "[vms]\nnames = ['vm1', 'vm1']\n")
    res = subprocess.run([sys.executable, "-m", "lab", "-c", str(path), "config"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert str(path) in res.stderr and "[vms.names]" in res.stderr and "fix:" in res.stderr


def test_uri_that_does_not_answer_names_the_key() -> None:
    # A libvirt client really connecting to a closed loopback port.
    hv = Hypervisor("qemu+tcp://127.0.0.1:1/system", "/x/lab.toml")
    with pytest.raises(LabFailure) as info:
        hv.check()
    assert "/x/lab.toml: [lab] uri" in str(info.value)
    assert "127.0.0.1:1" in str(info.value)
    hv.close()
    hv.close()  # idempotent


def test_explain_lists_every_key_with_its_doc() -> None:
    from dataclasses import fields

    from lab.config import SECTIONS, explain

    text = explain()
    for cls in SECTIONS.values():
        for f in fields(cls):
            assert f"\n{f.name} = " in text
            assert f.metadata["doc"] in text
