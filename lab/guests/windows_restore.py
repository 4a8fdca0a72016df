"""A Windows VM restored from the lab's template (lab.template) takes its own identity.

Through QEMU's guest agent (qemu-ga, which the Windows image runs; QEMU's "QEMU Guest
Agent Protocol Reference"), before its NICs are hot-plugged (Windows installs them by
Plug and Play, and DHCP gives the management NIC its address):

1. ``guest-set-time`` with the host's clock: the saved state's clock is the template's;
2. ``guest-exec`` of the image's identity boot step (lab.guests.windows_identity: it
   copies the VM's own SSH host key pair from its identity media and restarts sshd),
   waited for through ``guest-exec-status`` until it exits; a non-zero exit code fails
   with its error output. The media in the VM's domain is its own; lab.clone ejects and
   inserts it first so that Windows reads the new disc, not the template's it cached.

Not done here, on purpose: the random state (Windows reseeds its RNG itself when the
VM generation ID changes -- Microsoft, "Virtual machine generation identifier" -- and
each domain has its own, domxml ``<genid/>``), and the computer name (a rename needs a
reboot; the lab finds Windows VMs by domain and MAC, never by computer name).

Tested against a typed double of qemu-ga fed with replies in the protocol reference's
shapes (tests/unit/test_windows_restore.py); no real Windows guest runs here.
"""

from __future__ import annotations

import base64
from typing import Any

from lab.errors import LabFailure
from lab.guests.base import AgentCall, RestoredIdentity
from lab.guests.windows_identity import MEDIA_WAIT_S, boot_script_path
from lab.wait import wait_for

#: Windows PowerShell 5.1, where every Windows image has it.
POWERSHELL = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
#: The boot step waits up to MEDIA_WAIT_S for the media's drive letter; then sshd restarts.
IDENTITY_DEADLINE_S = MEDIA_WAIT_S + 60.0


def identity_command() -> tuple[str, list[str]]:
    """guest-exec's path and arguments: the image's identity boot step, run now."""
    return POWERSHELL, ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
                        "-File", boot_script_path()]


def take_identity(restored: RestoredIdentity, agent: AgentCall) -> None:
    """Steps 1 and 2 of the module docstring."""
    agent("guest-set-time", {"time": restored.epoch * 1_000_000_000})
    path, args = identity_command()
    started = agent("guest-exec", {"path": path, "arg": args, "capture-output": True})
    if not isinstance(started, dict) or not isinstance(started.get("pid"), int):
        raise LabFailure(f"{restored.vm.name}: qemu-ga guest-exec answered {started!r}, "
                         "not {'pid': N}")
    pid = started["pid"]

    def status() -> dict[str, Any] | None:
        reply = agent("guest-exec-status", {"pid": pid})
        return reply if isinstance(reply, dict) and reply.get("exited") else None

    done = wait_for(f"the identity boot step in {restored.vm.name} (qemu-ga pid {pid})",
                    status, IDENTITY_DEADLINE_S, interval=0.2, max_interval=1.0)
    if done.get("exitcode") != 0:
        raise LabFailure(f"{restored.vm.name}: the identity boot step {boot_script_path()} "
                         f"exited {done.get('exitcode')}: {_text(done, 'err-data')}",
                         hint="see C:\\Windows\\Temp\\driver-lab-identity.log in the VM; "
                              "`lab image check` checks the boot step")


def _text(status: dict[str, Any], field: str) -> str:
    """A base64 output field of guest-exec-status, decoded, last 300 characters."""
    raw = status.get(field)
    if not isinstance(raw, str):
        return "(no output)"
    try:
        text = base64.b64decode(raw).decode("utf-8", errors="replace")
    except ValueError:
        return "(undecodable output)"
    return text.strip()[-300:] or "(empty)"
