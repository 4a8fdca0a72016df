"""The hypervisor host as the lab sees it: which libvirtd, which network namespace.

For a local URI with no libvirtd answering (and root), the lab runs its own
sandboxed daemons (:mod:`lab.sandbox`) and moves this process into their
network namespace before it opens any connection or starts any thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lab import netns
from lab.config import LabConfig, SandboxMode
from lab.errors import LabFailure
from lab.hypervisor import LOCAL_URIS, Hypervisor
from lab.lablock import sandbox_changes, use_sandbox
from lab.progress import Progress
from lab.sandbox import Sandbox, libvirtd_answers


@dataclass(frozen=True)
class HostPlan:
    """Decision about the host side, before anything is started."""

    use_sandbox: bool
    netns: str | None


def decide(config: LabConfig) -> HostPlan:
    sandbox = Sandbox()
    mode = config.lab.sandbox
    local = config.lab.uri in LOCAL_URIS
    if mode is SandboxMode.NEVER or not local:
        if mode is SandboxMode.ALWAYS:
            raise LabFailure(f"{config.path}: [lab] sandbox = \"always\" needs a local URI, "
                             f"not {config.lab.uri}", hint="use qemu:///system or sandbox = auto")
        return HostPlan(use_sandbox=False, netns=None)
    if sandbox.running() or sandbox.state() is not None:
        return HostPlan(use_sandbox=True, netns=sandbox.netns)
    if mode is SandboxMode.ALWAYS or (not libvirtd_answers() and os.geteuid() == 0):
        return HostPlan(use_sandbox=True, netns=sandbox.netns)
    return HostPlan(use_sandbox=False, netns=None)


def open_host(config: LabConfig, progress: Progress, start: bool = True) -> Hypervisor | None:
    """Enter the sandbox (starting it when ``start``) and return a hypervisor connection.

    Returns None when the lab uses a sandbox that is not running and ``start`` is
    False (e.g. `lab status` on a lab that is down).
    """
    plan = decide(config)
    if plan.use_sandbox:
        sandbox = Sandbox()
        use_sandbox(sandbox.dir, progress)  # a `lab down` elsewhere now keeps it running
        if not sandbox.running():
            if not start:
                return None
            with sandbox_changes(sandbox.dir, progress):  # one starter at a time, host-wide
                if not sandbox.running():
                    _start_sandbox(sandbox, progress)
        netns.enter(sandbox.netns)
    hv = Hypervisor(config.lab.uri, str(config.path))
    hv.check()
    return hv


def _start_sandbox(sandbox: Sandbox, progress: Callable[[str], None]) -> None:
    if sandbox.state() is not None and netns.exists(sandbox.netns):
        # One daemon died (libvirtd or virtlogd): restart it alone; the running VMs of
        # every lab stay up and the new libvirtd reattaches to them.
        for line in sandbox.heal():
            progress(f"sandbox {line}; running VMs kept")
        if sandbox.running():
            return
    if sandbox.state() is not None:
        progress("sandbox daemons are gone; cleaning up their namespace")
        sandbox.stop()
    progress(f"no libvirtd answers: starting the lab's own libvirtd in network "
             f"namespace {sandbox.netns}")
    st = sandbox.start()
    progress(f"libvirtd pid {st.libvirtd_pid}, virtlogd pid {st.virtlogd_pid}")


def reconnect(config: LabConfig, hv: Hypervisor, progress: Callable[[str], None]) -> bool:
    """Make ``hv`` usable again after its libvirtd went away (a pytest worker between
    tests): restart the sandbox's dead daemon if the lab runs one, then reconnect.

    Returns True when the connection had been lost. Raises LabFailure (one line) when
    the hypervisor cannot be reached again.
    """
    if hv.alive():
        return False
    hv.close()
    plan = decide(config)
    if plan.use_sandbox:
        sandbox = Sandbox()
        with sandbox_changes(sandbox.dir, progress):  # one healer at a time, host-wide
            if not sandbox.running():
                _start_sandbox(sandbox, progress)
    hv.check()
    progress(f"reconnected to {hv.uri}")
    return True


@contextmanager
def inside_lab(config: LabConfig) -> Iterator[None]:
    """The calling thread inside the lab's namespace (if it runs in one) for the block."""
    plan = decide(config)
    if plan.use_sandbox and plan.netns and netns.exists(plan.netns):
        with netns.inside(plan.netns):
            yield
    else:
        yield


def enter_existing(config: LabConfig) -> None:
    """Enter the lab's namespace if the lab runs in one (for ssh/status helpers)."""
    plan = decide(config)
    if plan.use_sandbox and plan.netns and netns.exists(plan.netns):
        netns.enter(plan.netns)
