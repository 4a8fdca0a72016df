"""A Windows VM restored from the template takes its identity (lab.guests.windows_restore),
against a TEST DOUBLE of QEMU's guest agent: no Windows guest runs here.

The double answers in the shapes of QEMU's "QEMU Guest Agent Protocol Reference"
(qemu-ga-ref): ``guest-set-time`` returns ``{}``; ``guest-exec`` returns
``GuestExec {"pid": int}``; ``guest-exec-status`` returns ``GuestExecStatus`` with
``exited`` and, once exited, ``exitcode`` and base64 ``out-data`` / ``err-data``.
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab import domxml
from lab.config import parse_config
from lab.errors import DeadlineExceeded, LabFailure
from lab.guests import windows_restore
from lab.guests.base import RestoredIdentity
from lab.guests.windows_identity import boot_script_path
from lab.plan import make_plan


@dataclass
class QgaDouble:
    """Typed double of qemu-ga for the identity step: ``polls`` running statuses, then an
    exit with ``exitcode`` and ``stderr``. Records every call."""

    polls: int = 2
    exitcode: int = 0
    stderr: str = ""
    exec_reply: object = field(default_factory=lambda: {"pid": 4242})
    calls: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def __call__(self, execute: str, arguments: dict[str, object]) -> object:
        self.calls.append((execute, arguments))
        if execute == "guest-set-time":
            return {}
        if execute == "guest-exec":
            return self.exec_reply
        if execute == "guest-exec-status":
            assert arguments == {"pid": 4242}
            if self.polls > 0:
                self.polls -= 1
                return {"exited": False}
            return {"exited": True, "exitcode": self.exitcode,
                    "out-data": base64.b64encode(b"installed the host key\r\n").decode(),
                    "err-data": base64.b64encode(self.stderr.encode()).decode()}
        raise AssertionError(f"unexpected qemu-ga command {execute}")


def _restored(tmp_path: Path) -> RestoredIdentity:
    vm = make_plan(parse_config({}, tmp_path / "lab.toml")).vms[0]
    return RestoredIdentity(vm=vm, host_key=None, epoch=1796200000, seed=b"\x01" * 32)


def test_identity_after_restore_on_the_qga_double_sets_the_clock_then_runs_the_step(
        tmp_path: Path) -> None:
    qga = QgaDouble()
    windows_restore.take_identity(_restored(tmp_path), qga)
    assert qga.calls[0] == ("guest-set-time", {"time": 1796200000 * 1_000_000_000})
    execute, arguments = qga.calls[1]
    assert execute == "guest-exec" and arguments["capture-output"] is True
    assert str(arguments["path"]).lower().endswith("powershell.exe")
    args = arguments["arg"]
    assert isinstance(args, list) and args[-2:] == ["-File", boot_script_path()]
    assert [c for c, _ in qga.calls[2:]] == ["guest-exec-status"] * 3


def test_a_failing_identity_step_on_the_qga_double_names_its_error_output(
        tmp_path: Path) -> None:
    qga = QgaDouble(exitcode=1, stderr="Copy-Item : Cannot find path 'D:\\ssh_host_ed25519_key'")
    with pytest.raises(LabFailure, match="exited 1: Copy-Item : Cannot find path"):
        windows_restore.take_identity(_restored(tmp_path), qga)


def test_a_guest_exec_without_a_pid_on_the_qga_double_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LabFailure, match=re.escape("not {'pid': N}")):
        windows_restore.take_identity(_restored(tmp_path), QgaDouble(exec_reply={}))


def test_an_identity_step_that_never_exits_on_the_qga_double_hits_its_deadline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(windows_restore, "IDENTITY_DEADLINE_S", 0.5)
    with pytest.raises(DeadlineExceeded):
        windows_restore.take_identity(_restored(tmp_path), QgaDouble(polls=10_000))


def test_the_identity_media_change_ejects_then_inserts_the_vms_own_disc() -> None:
    eject = ET.fromstring(domxml.identity_media_xml(None, "sata"))
    insert = ET.fromstring(domxml.identity_media_xml("/pool/ident-vm1.iso", "sata"))
    assert eject.get("device") == "cdrom" and eject.find("source") is None
    source = insert.find("source")
    assert source is not None and source.get("file") == "/pool/ident-vm1.iso"
    for disc in (eject, insert):
        target = disc.find("target")
        assert target is not None and target.get("dev") == "sdb"
