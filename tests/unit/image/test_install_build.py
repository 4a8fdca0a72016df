"""The image build's pieces that need no VM: console following, input checks, the cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from lab.errors import LabFailure
from lab.image import install_vm
from lab.image.install_inputs import (
    Edition,
    InputCache,
    check_edition,
    check_space,
    file_sha256,
    parse_wiminfo,
)
from lab.image.install_vm import ConsoleFollower, InstallFailed, follow_install
from lab.image.markers import COMPLETION_MARKER, FAILURE_PREFIX, STEP_PREFIX
from lab.image.windows_build import MANIFEST, cached_image

WIMINFO = """WIM Information:
----------------
Path:           install.wim
Image Count:    2

Available Images:
-----------------
Index:                  1
Name:                   Windows Server 2022 SERVERSTANDARDCORE
Description:            (recommended) This option omits most of the Windows graphical environment.

Index:                  2
Name:                   Windows Server 2022 SERVERSTANDARD
Description:            This option installs the full Windows graphical environment.
"""


def test_wiminfo_listing_is_parsed() -> None:
    assert parse_wiminfo(WIMINFO) == [Edition(1, "Windows Server 2022 SERVERSTANDARDCORE"),
                                      Edition(2, "Windows Server 2022 SERVERSTANDARD")]


@pytest.mark.parametrize("edition", ["2", "Windows Server 2022 SERVERSTANDARD"])
def test_edition_by_name_or_index(edition: str) -> None:
    assert check_edition(Path("w.iso"), edition, parse_wiminfo(WIMINFO)) == Edition(
        2, "Windows Server 2022 SERVERSTANDARD")


def test_unknown_edition_is_one_line_naming_the_choices() -> None:
    with pytest.raises(LabFailure) as err:
        check_edition(Path("w.iso"), "Windows 11 Pro", parse_wiminfo(WIMINFO))
    assert "\n" not in err.value.summary
    assert "--edition 'Windows 11 Pro'" in err.value.summary
    assert "2: Windows Server 2022 SERVERSTANDARD" in err.value.summary


def test_edition_unchecked_when_wiminfo_cannot_list() -> None:
    assert check_edition(Path("w.iso"), "anything", None) is None


def test_no_space_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    iso = tmp_path / "w.iso"
    iso.write_bytes(b"x" * 4096)

    class Usage:
        free = 1 << 20

    monkeypatch.setattr("lab.image.install_inputs.shutil.disk_usage", lambda _p: Usage())
    with pytest.raises(LabFailure) as err:
        check_space(tmp_path / "images" / "windows", iso)
    assert "\n" not in err.value.summary and "free" in err.value.summary


def test_hash_cache_reuses_until_the_file_changes(tmp_path: Path) -> None:
    file = tmp_path / "big.iso"
    file.write_bytes(b"one")
    cache = InputCache(tmp_path / "inputs.json")
    assert file_sha256(file, cache) == hashlib.sha256(b"one").hexdigest()
    data = json.loads(cache.path.read_text())
    data[str(file.resolve())]["sha256"] = "f" * 64  # proves the next call reads the cache
    cache.path.write_text(json.dumps(data))
    assert file_sha256(file, cache) == "f" * 64
    file.write_bytes(b"two!")  # size (and mtime) change: hashed again
    assert file_sha256(file, cache) == hashlib.sha256(b"two!").hexdigest()


def test_follower_joins_partial_lines_and_strips_terminal_codes(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    follower = ConsoleFollower(log)
    assert follower.new_lines() == []  # not created yet
    log.write_bytes(b"\x1b[2J\x1b[01;01Hfirst\r\nsec")
    assert follower.new_lines() == ["first"]
    with log.open("ab") as fh:
        fh.write(b"ond\r\n")
    assert follower.new_lines() == ["second"]
    assert follower.tail() == "first\nsecond"


class FakeHv:
    """Stands in for Hypervisor: the domain runs until ``runs_for`` polls have passed."""

    def __init__(self, runs_for: int) -> None:
        self.polls = 0
        self.runs_for = runs_for
        self.keys: list[list[int]] = []

    def is_running(self, dom: Any) -> bool:
        self.polls += 1
        return self.polls <= self.runs_for

    def send_keys(self, dom: Any, keys: list[int]) -> None:
        self.keys.append(keys)


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install_vm, "POLL_S", 0.01)


def _follow(tmp_path: Path, text: str, runs_for: int, timeout: float = 5.0,
            hv: FakeHv | None = None) -> tuple[list[str], FakeHv]:
    log = tmp_path / "console.log"
    log.write_text(text)
    said: list[str] = []
    hv = hv or FakeHv(runs_for)
    follow_install(hv, object(), ConsoleFollower(log), timeout, said.append)  # type: ignore[arg-type]
    return said, hv


def test_steps_then_marker_then_poweroff(tmp_path: Path) -> None:
    text = f"noise\n{STEP_PREFIX}1/2: a\n{STEP_PREFIX}2/2: b\n{COMPLETION_MARKER}\n"
    said, hv = _follow(tmp_path, text, runs_for=5)
    assert said[:2] == [f"{STEP_PREFIX}1/2: a", f"{STEP_PREFIX}2/2: b"]
    assert "completion marker seen" in said[2]
    assert hv.polls > 5 and hv.keys == []  # the marker came before any key was due


def test_failure_line_raises_with_the_tail(tmp_path: Path) -> None:
    with pytest.raises(InstallFailed) as err:
        _follow(tmp_path, f"{STEP_PREFIX}1/2: a\n{FAILURE_PREFIX}3/9: ssh: broken\n",
                runs_for=100)
    assert err.value.reason == "3/9: ssh: broken"
    assert f"{STEP_PREFIX}1/2: a" in err.value.console_tail


def test_stopping_without_the_marker_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InstallFailed, match="stopped before the completion marker"):
        _follow(tmp_path, f"{STEP_PREFIX}1/2: a\n", runs_for=1)


def test_firmware_with_nothing_to_boot_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InstallFailed, match="firmware found nothing to boot"):
        _follow(tmp_path, "BdsDxe: No bootable option or device was found.\n", runs_for=100)


def test_deadline_gives_the_stuck_error_and_presses_keys(tmp_path: Path) -> None:
    hv = FakeHv(10**6)
    with pytest.raises(InstallFailed, match=r"no completion marker within 0s") as err:
        _follow(tmp_path, f"{STEP_PREFIX}1/2: a\n", runs_for=10**6, timeout=0.3, hv=hv)
    assert "Setup or provisioning is stuck" in err.value.summary
    assert hv.keys == [[install_vm.KEY_ENTER]]  # "Press any key to boot from CD or DVD"


def _manifest(folder: Path, disk_bytes: bytes, **override: object) -> None:
    folder.mkdir(parents=True)
    (folder / "windows.qcow2").write_bytes(disk_bytes)
    data = {"digest": folder.name, "disk": "windows.qcow2", "size": len(disk_bytes),
            "sha256": hashlib.sha256(disk_bytes).hexdigest(), "ssh_key": "id_admin",
            "host_key_pub": "ssh_host_key.pub", **override}
    (folder / MANIFEST).write_text(json.dumps(data))


def test_cache_entry_reused_only_when_the_disk_matches(tmp_path: Path) -> None:
    good = tmp_path / "abc"
    _manifest(good, b"disk")
    found = cached_image(good, "abc")
    assert found is not None and found.cached and found.disk == good / "windows.qcow2"
    (good / "windows.qcow2").write_bytes(b"DISK")  # same size, other content
    assert cached_image(good, "abc") is None
    assert cached_image(tmp_path / "missing", "missing") is None
    other = tmp_path / "def"
    _manifest(other, b"disk", size=99)
    assert cached_image(other, "def") is None
    (other / MANIFEST).unlink()  # a folder without its manifest is never reused
    assert cached_image(other, "def") is None
