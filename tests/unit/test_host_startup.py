"""Two savings of `lab up` on the host, each checked against the system itself:
QEMU's libvirtd started without transparent huge pages (the kernel's own report in
/proc/PID/status), and the guest kernel package's apt-cache answer kept while apt's
state is unchanged (a call counter on the resolver; apt-cache itself is real)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lab import no_thp
from lab.guests import micro_image


def thp_line(argv: list[str]) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    return next(line for line in res.stdout.splitlines() if line.startswith("THP_enabled"))


def test_no_thp_turns_huge_pages_off_for_the_command_and_its_children() -> None:
    probe = ["sh", "-c", "grep THP_enabled /proc/self/status"]  # a child of the command
    assert thp_line(probe).split() == ["THP_enabled:", "1"]  # this kernel reports the field
    assert thp_line(no_thp.argv(probe)).split() == ["THP_enabled:", "0"]


def test_no_thp_prefix_is_one_shell_word_list_that_runs_the_command() -> None:
    res = subprocess.run(["sh", "-c", no_thp.prefix() + "grep THP_enabled /proc/self/status"],
                         capture_output=True, text=True, timeout=30, check=True)
    assert res.stdout.split() == ["THP_enabled:", "0"]


def test_a_command_that_cannot_start_fails_like_any_exec() -> None:
    res = subprocess.run(no_thp.argv(["/nonexistent/daemon"]), capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 127
    assert res.stderr == "/nonexistent/daemon: No such file or directory\n"  # no traceback


@pytest.fixture
def apt_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    lists, status = tmp_path / "lists", tmp_path / "status"
    lists.mkdir()
    status.write_text("")
    monkeypatch.setattr(micro_image, "APT_STATE", (lists, status))
    asked: list[str] = []
    real = micro_image.resolve_kernel_package

    def counting(package: str) -> str:
        asked.append(package)
        return real(package)

    monkeypatch.setattr(micro_image, "resolve_kernel_package", counting)
    return status, asked


def test_apt_cache_is_asked_once_while_apt_is_unchanged(
        tmp_path: Path, apt_state: tuple[Path, list[str]]) -> None:
    status, asked = apt_state
    cache = tmp_path / "cache"
    package = "linux-image-cloud-amd64"
    first = micro_image.resolve_cached(package, cache)
    assert first.startswith("linux-image-") and first[len("linux-image-")].isdigit()
    assert micro_image.resolve_cached(package, cache) == first
    assert asked == [package]
    os.utime(status, ns=(1, 1))  # `apt-get update` / a dpkg change: ask again
    assert micro_image.resolve_cached(package, cache) == first
    assert asked == [package, package]


def test_a_broken_record_is_asked_again(tmp_path: Path,
                                        apt_state: tuple[Path, list[str]]) -> None:
    _status, asked = apt_state
    cache = tmp_path / "cache"
    cache.mkdir()
    for junk in ("", "[]", '{"package": 1}', "{not json"):
        (cache / "kernel-package.json").write_text(junk)
        micro_image.resolve_cached("linux-image-cloud-amd64", cache)
    assert len(asked) == 4
