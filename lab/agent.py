"""The out-of-band channel: the guest agent on a virtio-serial port, through libvirt.

Every lab VM has the port ``org.qemu.guest_agent.0`` (:data:`lab.domxml.AGENT_CHANNEL`).
The micro guest answers it with its own small agent (images/linux-micro/lab-agent.c),
a Windows guest with the stock QEMU guest agent if installed. It tells "the driver
broke the network" (the agent answers, SSH does not) from "the lab lost the guest"
(neither answers). Every call has a hard deadline: libvirt's call runs in a worker
thread the caller stops waiting for.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from lab.errors import AgentUnavailable, LabFailure
from lab.hypervisor import Hypervisor

#: How long a guest-ping may take (libvirt's guest-sync included).
PING_DEADLINE_S = 15.0
#: SysRq t prints every task on the serial console: slow under TCG.
SYSRQ_DEADLINE_S = 90.0
#: How long a command retries while libvirt has no agent connection (the guest's port
#: reopens within about a second of a snapshot loaded in place, lab.fast_revert).
CONNECT_GRACE_S = 5.0
CONNECT_RETRY_S = 0.1
#: The lab-specific command of lab-agent.c.
SYSRQ_COMMAND = "lab-sysrq"


class AgentSilent(LabFailure):
    """The guest agent did not answer (not connected, not running, or too slow)."""


def _within(what: str, call: Callable[[], str], deadline_s: float) -> str:
    """``call()`` in a daemon thread; AgentSilent when it has not returned in time."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["reply"] = call()
        except LabFailure as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, name="lab-agent-call", daemon=True)
    worker.start()
    worker.join(deadline_s)
    if worker.is_alive():
        raise AgentSilent(f"{what}: no answer within {deadline_s:.0f}s")
    if "error" in box:
        raise AgentSilent(f"{what}: {box['error'].summary}") from box["error"]
    return str(box["reply"])


def command(hv: Hypervisor, dom: Any, execute: str, arguments: dict[str, Any] | None = None,
            deadline_s: float = PING_DEADLINE_S) -> Any:
    """Run one agent command; its ``return`` value (AgentSilent / LabFailure otherwise)."""
    request: dict[str, Any] = {"execute": execute}
    if arguments is not None:
        request["arguments"] = arguments
    what = f"guest agent {execute} on {dom.name()}"
    # libvirt's own wait is shorter than ours: ours also covers its guest-sync.
    end = time.monotonic() + deadline_s
    grace = time.monotonic() + min(CONNECT_GRACE_S, deadline_s)
    while True:
        try:
            text = _within(what, lambda: hv.agent_command(dom, json.dumps(request),
                                                           max(1, int(deadline_s) - 11)),
                           max(end - time.monotonic(), 0.1))
            break
        except AgentSilent as exc:
            # a port closed for a moment (a snapshot just loaded): try again, briefly
            if not isinstance(exc.__cause__, AgentUnavailable) or time.monotonic() >= grace:
                raise
            time.sleep(CONNECT_RETRY_S)
    try:
        reply = json.loads(text)
    except ValueError:
        raise LabFailure(f"{what}: reply is not JSON: {text[:200]!r}") from None
    if not isinstance(reply, dict) or "return" not in reply:
        raise LabFailure(f"{what}: agent error: {str(reply)[:300]}")
    return reply["return"]


def ping(hv: Hypervisor, dom: Any, deadline_s: float = PING_DEADLINE_S) -> bool:
    """Whether the guest agent answers guest-ping in time (never raises a LabFailure)."""
    try:
        command(hv, dom, "guest-ping", deadline_s=deadline_s)
    except LabFailure:
        return False
    return True


def sysrq(hv: Hypervisor, dom: Any, keys: str = "w",
          deadline_s: float = SYSRQ_DEADLINE_S) -> str:
    """Trigger SysRq ``keys`` (w: blocked tasks, t: all tasks) in the micro guest; the
    keys the agent wrote to /proc/sysrq-trigger. The stacks go to the kernel log/console."""
    done = command(hv, dom, SYSRQ_COMMAND, {"keys": keys}, deadline_s)
    return str(done.get("done", "")) if isinstance(done, dict) else ""
