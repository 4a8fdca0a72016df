"""Issue 15, pure parts: the lab lock, the state-dir identity, ownership predicates,
cache/state parsing. (The faults themselves are injected by tests/faults.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab import domxml, identity
from lab.accel import parse_cache
from lab.config import Acceleration
from lab.errors import LabBusy, NotOurs
from lab.hypervisor import Hypervisor
from lab.lablock import Holder, lab_lock, parse_holder, read_holder, sandbox_changes, use_sandbox
from lab.sandbox import parse_state


def test_lock_names_its_holder_and_fails_after_the_deadline(tmp_path: Path) -> None:
    said: list[str] = []
    with lab_lock("x", tmp_path, "up", said.append):
        assert read_holder(tmp_path) == Holder(pid=os.getpid(), command="up")
        t0 = time.monotonic()
        with pytest.raises(LabBusy, match=rf"`lab up` \(pid {os.getpid()}\) holds"), \
                lab_lock("x", tmp_path, "down", said.append, wait_s=0.6):
            pass
        assert time.monotonic() - t0 >= 0.6
    assert any("waiting for `lab up`" in line for line in said)
    with lab_lock("x", tmp_path, "down", said.append, wait_s=0):
        assert read_holder(tmp_path).command == "down"


def test_half_written_holder_is_anonymous() -> None:
    assert parse_holder('{"pid": 12') == Holder(pid=0, command="?")
    assert parse_holder("").describe() == "another command"


def test_state_dir_is_claimed_once_and_refused_to_another_config(tmp_path: Path) -> None:
    cfg_a, cfg_b = tmp_path / "a.toml", tmp_path / "b.toml"
    me = identity.claim("lab1", cfg_a, tmp_path / "var")
    assert identity.claim("lab1", cfg_a, tmp_path / "var") == me
    with pytest.raises(NotOurs, match="cannot share a state dir"):
        identity.claim("lab1", cfg_b, tmp_path / "var")
    with pytest.raises(NotOurs):
        identity.claim("lab2", cfg_a, tmp_path / "var")


def test_garbage_identity_is_reclaimed_with_a_new_install_id(tmp_path: Path) -> None:
    identity.identity_path(tmp_path).write_text('{"lab": "l')
    assert identity.read(tmp_path) is None
    assert len(identity.claim("l", tmp_path / "c.toml", tmp_path).install) == 12


def test_ownership_needs_the_install_id_when_stamped() -> None:
    me = identity.Identity(lab="l", config="/c", state_dir="/s", install="abc")
    assert identity.owns(me, "l", "l", "abc")
    assert not identity.owns(me, "l", "l", "other")  # same name, another config
    assert not identity.owns(me, "l", "m", "abc")
    assert identity.owns(me, "l", "l", None)  # made before install ids


def test_pool_ownership_by_markers() -> None:
    me = identity.Identity(lab="l", config="/c", state_dir="/s", install="abc")
    owner = "l.driver-lab-owner"
    assert not identity.pool_is_ours(["golden-1.qcow2"], "l", owner, me)
    assert identity.pool_is_ours([owner], "l", owner, me)  # legacy: unstamped
    assert identity.pool_is_ours([owner, identity.install_marker("l", "abc")], "l", owner, me)
    assert not identity.pool_is_ours([owner, identity.install_marker("l", "zzz")], "l", owner,
                                     me)


def test_only_the_labs_files_count_as_its_volumes() -> None:
    assert identity.is_lab_volume("golden-ab.qcow2", "l", ["vm1"])
    assert identity.is_lab_volume(identity.done_marker("kernel-ab", "f" * 64), "l", ["vm1"])
    assert identity.is_lab_volume("vm1.qcow2", "l", ["vm1"])
    assert identity.is_lab_volume("l.driver-lab-owner", "l", ["vm1"])
    assert not identity.is_lab_volume("thesis.txt", "l", ["vm1"])
    assert not identity.is_lab_volume("vm2.qcow2", "l", ["vm1"])
    assert identity.is_lab_volume("ident-vm1.iso", "l", ["vm1"])  # Windows identity media
    assert identity.is_lab_volume(identity.done_marker("ident-vm1.iso", "f" * 64), "l", ["vm1"])
    assert not identity.is_lab_volume("ident-vm2.iso", "l", ["vm1"])
    assert not identity.is_lab_volume("ident-vm1.iso.bak", "l", ["vm1"])
    # the lab's template (lab.template) and its upload-complete mark
    assert identity.is_lab_volume("template-0123456789abcdef01234567.qcow2", "l", ["vm1"])
    assert identity.is_lab_volume(identity.done_marker("template-01.qcow2", "f" * 64), "l",
                                  ["vm1"])
    assert not identity.is_lab_volume("mytemplate-01.qcow2", "l", ["vm1"])


def test_metadata_round_trips_install_and_state_dir() -> None:
    root = ET.Element("domain")
    domxml.metadata(root, domxml.Ownership("l", "r1", "vm1", install="abc", state_dir="/s"))
    owner = Hypervisor.owner_from_xml(ET.tostring(root, encoding="unicode"))
    assert owner is not None
    assert (owner.lab, owner.run, owner.vm, owner.install, owner.state_dir) == (
        "l", "r1", "vm1", "abc", "/s")


def test_half_written_caches_and_records_are_ignored() -> None:
    assert parse_cache('{"key": "6.1|/usr/bin/q') is None
    assert parse_cache('{"key": "k", "choice": "warp", "reason": "r"}') is None
    good = parse_cache('{"key": "k", "choice": "tcg", "reason": "r"}')
    assert good is not None and good.choice is Acceleration.TCG
    assert parse_state('{"netns": "driverlab", "libvirtd_pid": 1') is None
    state = parse_state('{"netns": "n", "libvirtd_pid": 2, "virtlogd_pid": 3}')
    assert state is not None and state.libvirtd_pid == 2


def _sole_user_elsewhere(run_dir: Path) -> bool:
    code = ("import sys; from pathlib import Path; from lab.lablock import sole_sandbox_user\n"
            f"sys.exit(0 if sole_sandbox_user(Path({str(run_dir)!r})) else 3)")
    return subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_down_keeps_the_sandbox_while_another_command_uses_it(tmp_path: Path) -> None:
    assert _sole_user_elsewhere(tmp_path)
    use_sandbox(tmp_path, print)  # this process is a user until it exits
    assert not _sole_user_elsewhere(tmp_path)
    with sandbox_changes(tmp_path, print):
        pass
