"""The KVM probe's answer is shared by every lab on the host (lab.accel's host cache):
a new lab takes it instead of probing for 20 s; an answer for another boot or QEMU, or a
broken file, is not taken. The probe, when it runs, is the real one (QEMU started with a
kernel that does not exist fails at once, or /dev/kvm is not usable: either way TCG)."""

from __future__ import annotations

import json
from pathlib import Path

from lab import accel
from lab.config import Acceleration

MISSING = Path("/nonexistent/vmlinuz")


def _resolve(lab_cache: Path, host_cache: Path) -> tuple[Acceleration, list[str]]:
    said: list[str] = []
    choice = accel.resolve(Acceleration.AUTO, lab_cache, MISSING, MISSING, said.append,
                           host_cache=host_cache)
    return choice, said


def _write(path: Path, key: str, choice: str, reason: str) -> None:
    path.write_text(json.dumps({"key": key, "choice": choice, "reason": reason}))


def test_a_new_lab_takes_the_hosts_answer_without_probing(tmp_path: Path) -> None:
    host = tmp_path / "run" / "accel.json"
    host.parent.mkdir()
    # "kvm" cannot be what this host's probe of a missing kernel answers: taken, not probed
    _write(host, accel._cache_key(), "kvm", "a KVM probe guest booted to userspace")
    choice, said = _resolve(tmp_path / "lab" / "accel.json", host)
    assert choice is Acceleration.KVM
    assert not any("probing" in line for line in said), said
    assert any(str(host) in line for line in said), said
    copied = accel.parse_cache((tmp_path / "lab" / "accel.json").read_text())
    assert copied is not None and copied.choice is Acceleration.KVM


def test_an_answer_for_another_boot_is_probed_again_and_replaced(tmp_path: Path) -> None:
    host = tmp_path / "accel.json"
    _write(host, "6.1.0|another-boot|/usr/bin/qemu-system-x86_64|1", "kvm", "old")
    choice, said = _resolve(tmp_path / "lab.json", host)
    assert choice is Acceleration.TCG  # the real probe of a missing kernel
    assert any("probing KVM" in line for line in said), said
    shared = accel.parse_cache(host.read_text())
    assert shared is not None and shared.key == accel._cache_key()
    assert shared.choice is Acceleration.TCG


def test_a_broken_host_answer_is_said_and_probed_again(tmp_path: Path) -> None:
    host = tmp_path / "accel.json"
    host.write_text('{"key": "6.1|')
    choice, said = _resolve(tmp_path / "lab.json", host)
    assert choice is Acceleration.TCG
    assert any("ignoring" in line and str(host) in line for line in said), said
    assert accel.parse_cache(host.read_text()) is not None


def test_a_host_cache_that_cannot_be_written_is_one_note(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    choice, said = _resolve(tmp_path / "lab.json", blocker / "accel.json")
    assert choice is Acceleration.TCG
    assert any("not shared with other labs" in line for line in said), said
    assert accel.parse_cache((tmp_path / "lab.json").read_text()) is not None
