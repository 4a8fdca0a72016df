"""One error root for the whole lab.

Every failure the lab reports is a :class:`LabError`. It is one of two kinds and
the two never look alike in a report:

* :class:`DriverFailure` -- the driver under test misbehaved: it crashed, hung,
  broke a contract (journal order, register/deregister pairing) or corrupted data.
* :class:`LabFailure` -- the lab itself could not do its job: libvirt, QEMU, an
  image, SSH, the host, or the user's configuration.

Each error carries a one-line ``summary`` and an optional ``hint`` telling the
user what to do about it; the CLI prints those instead of a traceback.
"""

from __future__ import annotations


class LabError(Exception):
    """Root of every error the lab raises on purpose."""

    kind = "error"

    def __init__(self, summary: str, *, hint: str | None = None) -> None:
        super().__init__(summary)
        self.summary = summary
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.summary}\n  fix: {self.hint}"
        return self.summary


class LabFailure(LabError):
    """The lab (libvirt, QEMU, image, SSH, host, configuration) failed."""

    kind = "lab failed"


class LabBusy(LabFailure):
    """Another command holds the lab's lock (lab up/down/images/selftest run one at a time)."""


class NotOurs(LabFailure):
    """A libvirt object, directory or state dir that this lab (config + state dir) did not
    make: the lab neither adopts nor removes it."""


class OutsideLab(LabFailure):
    """A host-side probe, load or SSH session would leave the lab's networks (the target is
    not a lab address, or this process is not in the lab's network namespace): refused."""


class HypervisorLost(LabFailure):
    """The connection to libvirtd closed under a test (libvirtd died or the link broke):
    what the test waited for can no longer be seen, so it is the lab's verdict."""


class AgentUnavailable(LabFailure):
    """libvirt has no guest agent connection to the VM right now (its port is closed,
    e.g. for a moment after a snapshot was loaded) or the agent did not answer its sync
    (libvirt's VIR_ERR_AGENT_UNRESPONSIVE)."""


class VmPaused(LabFailure):
    """The hypervisor paused the VM on a disk I/O error (e.g. a full storage pool)."""


class DriverFailure(LabError):
    """The driver under test failed (crash, hang, broken contract, corrupt data)."""

    kind = "driver failed"


class ConfigError(LabFailure):
    """``lab.toml`` is wrong. Always names the file, the key and the fix."""

    def __init__(self, path: str, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{path}: [{key}] {problem}", hint=fix)
        self.path = path
        self.key = key


class DeadlineExceeded(LabFailure):
    """A wait ran out of time. The message names what was awaited and for how long."""

    def __init__(self, what: str, seconds: float, last_seen: str | None = None) -> None:
        detail = f"; last seen: {last_seen}" if last_seen else ""
        super().__init__(f"timed out after {seconds:.0f}s waiting for {what}{detail}")
        self.what = what
        self.seconds = seconds


class DriverHang(DriverFailure):
    """The driver did not finish something within a deadline that only it controls."""

    kind = "driver hung"


class DriverCrash(DriverFailure):
    """The guest kernel crashed (panic, oops, bugcheck) while the driver ran."""

    kind = "driver crashed"


class NetworkBroken(DriverFailure):
    """The guest is alive (its agent answered over virtio-serial) but unreachable on its
    management network: the driver under test broke the guest's networking."""

    kind = "driver broke the network"


class GuestCommandError(LabFailure):
    """A guest command could not be run to completion (base of the kinds below)."""


class CommandTimeout(GuestCommandError):
    """A guest command outlived its deadline (the caller decides whose fault that is)."""

    def __init__(self, guest: str, command: str, seconds: float) -> None:
        super().__init__(f"{guest}: {command!r} did not finish within {seconds:.0f}s")
        self.guest = guest
        self.command = command
        self.seconds = seconds


class GuestUnreachable(GuestCommandError):
    """The guest's command channel (SSH) could not be opened or was lost."""


class HostKeyRefused(GuestUnreachable):
    """The guest's SSH server presented a host key other than the one pinned for this VM."""


class CommandFailed(GuestCommandError):
    """A guest command the lab relies on exited non-zero."""

    def __init__(self, guest: str, command: str, exit_code: int, stderr: str) -> None:
        super().__init__(f"{guest}: {command!r} exited {exit_code}: {stderr.strip()[-500:]}")
        self.exit_code = exit_code
        self.stderr = stderr


class LinkStateUnsupported(LabFailure):
    """The NIC's emulation never reported a link change to the guest (libvirt set the
    link state, the guest's own carrier did not follow): nothing to test the driver on."""


class NicModelDown(LabFailure):
    """A test NIC cannot carry the transport's traffic for reasons below the driver under
    test (the NIC model's emulation): nothing to test the driver on through it."""


class NoCarrier(NicModelDown):
    """The guest's own adapter (read from the OS, not from the driver under test) has no
    carrier and did not get it back within the LINK_BACK budget."""


class NoTraffic(NicModelDown):
    """The adapter has carrier but passes no IP at all either (not even the guest
    kernel's reset of a connection to a closed port): the NIC, not the transport."""


class GatewayUnreachable(GuestUnreachable):
    """The SSH gateway (a remote hypervisor host's sshd) in front of a guest could not be
    reached or refused the lab's key: the guests behind it cannot be reached either."""


class GatewayKeyRefused(GatewayUnreachable):
    """An SSH gateway presented a host key other than the one pinned for it."""
