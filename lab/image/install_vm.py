"""Running the transient install VM and following its serial console (COM1).

Windows Setup prints nothing on the serial port; the first-logon provisioning
script writes one line per step, then the completion marker (or a failure line)
to COM1, which libvirt logs to a file. This module starts the VM, turns those
lines into progress, and ends in one of two ways: the VM powered itself off after
the completion marker, or one :class:`InstallFailed` with the console tail. The
VM never outlives :func:`run_install`.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.errors import LabFailure
from lab.hypervisor import Hypervisor
from lab.image.markers import COMPLETION_MARKER, FAILURE_PREFIX, STEP_PREFIX

Say = Callable[[str], None]

#: Linux input keycode of Enter (linux/input-event-codes.h), sent with virDomainSendKey.
KEY_ENTER = 28
#: The x64 UEFI loader of Microsoft's installation media asks "Press any key to boot from
#: CD or DVD" and falls through to the next boot option after a few seconds (that is how
#: Setup's own reboots reach the disk). The first boot needs a key: one every few seconds
#: for the first minute (Packer's Windows templates do the same with boot_command).
BOOT_KEY_WINDOW_S = 60.0
BOOT_KEY_INTERVAL_S = 3.0
POLL_S = 1.0
#: From the completion marker (the script then runs Stop-Computer) to the VM being off.
POWEROFF_DEADLINE_S = 600.0
TAIL_LINES = 25
#: OVMF's boot manager (edk2 BdsDxe) when nothing on any device boots, and the UEFI shell
#: it falls back to: Setup cannot continue from there.
FIRMWARE_FAILURES = ("BdsDxe: No bootable option or device was found", "Shell> ")
#: Terminal control sequences firmware and boot loaders print (colours, cursor moves).
_ANSI = re.compile(r"\x1b\[[0-9;=?]*[A-Za-z]")


class InstallFailed(LabFailure):
    """The install VM failed, hung or stopped early; carries the console tail."""

    def __init__(self, reason: str, tail: str, console_log: Path) -> None:
        body = "\n".join(f"    | {line}" for line in tail.splitlines()) or "    | (empty)"
        super().__init__(f"Windows image install failed: {reason}\n  console tail "
                         f"({console_log.name}):\n{body}",
                         hint=f"read {console_log}; watch Setup's screen with virt-viewer "
                              "while it runs; nothing of this build was kept")
        self.reason = reason
        self.console_tail = tail


class ConsoleFollower:
    """Complete new lines of a growing log file (CR/LF tolerant), and the last few lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._pending = ""
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)

    def new_lines(self) -> list[str]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        text = self._pending + _ANSI.sub("", data.decode("utf-8", errors="replace"))
        *lines, self._pending = text.replace("\r", "\n").split("\n")
        lines = [line for line in lines if line.strip()]
        self._tail.extend(lines)
        return lines

    def tail(self) -> str:
        return "\n".join([*self._tail, *([self._pending] if self._pending.strip() else [])])


def _check_line(line: str, follower: ConsoleFollower, say: Say) -> bool:
    """Report a step; True for the completion marker; raise on a failure line."""
    text = line.strip()
    if text.startswith(STEP_PREFIX):
        say(text)
    elif text.startswith(COMPLETION_MARKER):
        return True
    elif text.startswith(FAILURE_PREFIX):
        raise InstallFailed(text[len(FAILURE_PREFIX):], follower.tail(), follower.path)
    elif any(marker in text for marker in FIRMWARE_FAILURES):
        raise InstallFailed(f"the firmware found nothing to boot ({text})", follower.tail(),
                            follower.path)
    return False


def follow_install(hv: Hypervisor, dom: Any, follower: ConsoleFollower, timeout_s: float,
                   say: Say, press_keys: bool = True) -> None:
    """Follow the console until the completion marker; then wait for the power-off."""
    start = time.monotonic()
    deadline = start + timeout_s
    next_key = start
    while True:
        running = hv.is_running(dom)
        for line in follower.new_lines():
            if _check_line(line, follower, say):
                say("completion marker seen; waiting for the VM to power off")
                _await_poweroff(hv, dom, follower)
                return
        if not running:
            raise InstallFailed("the install VM stopped before the completion marker",
                                follower.tail(), follower.path)
        now = time.monotonic()
        if now >= deadline:
            raise InstallFailed(f"no completion marker within {timeout_s:.0f}s "
                                "([windows_image] install_timeout_s): Setup or provisioning "
                                "is stuck", follower.tail(), follower.path)
        if press_keys and now - start < BOOT_KEY_WINDOW_S and now >= next_key:
            hv.send_keys(dom, [KEY_ENTER])
            next_key = now + BOOT_KEY_INTERVAL_S
        time.sleep(min(POLL_S, max(deadline - now, 0.05)))


def _await_poweroff(hv: Hypervisor, dom: Any, follower: ConsoleFollower) -> None:
    deadline = time.monotonic() + POWEROFF_DEADLINE_S
    while hv.is_running(dom):
        if time.monotonic() >= deadline:
            raise InstallFailed(f"the VM did not power off within {POWEROFF_DEADLINE_S:.0f}s "
                                "after the completion marker", follower.tail(), follower.path)
        follower.new_lines()
        time.sleep(POLL_S)


def destroy_ours(hv: Hypervisor, name: str, lab: str, say: Say) -> None:
    """Destroy domain ``name`` only if it carries this lab's metadata."""
    found = hv.domain_with_owner(name)
    if found is None:
        return
    dom, owner = found
    if owner is None or owner.lab != lab:
        raise LabFailure(f"a domain named {name} exists and is not lab {lab}'s",
                         hint="rename or remove that domain; the image build needs the name")
    if hv.destroy(dom):
        say(f"install VM {name} destroyed")


def run_install(hv: Hypervisor, xml: str, name: str, lab: str, console_log: Path,
                timeout_s: float, say: Say) -> None:
    """Start the transient install VM from ``xml`` and follow it; it never outlives this."""
    destroy_ours(hv, name, lab, say)  # a build killed by SIGKILL may have left one running
    try:
        dom = hv.create_transient(xml)
        say(f"install VM {name} started; console: {console_log}")
        follow_install(hv, dom, ConsoleFollower(console_log), timeout_s, say)
        say("install VM powered off")
    finally:
        destroy_ours(hv, name, lab, say)
