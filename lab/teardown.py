"""`lab down`: remove exactly what the lab made, found by its metadata, and nothing else.

Works after an interrupted `lab up` (it never relies on the inventory) and is
idempotent: a second run finds nothing and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any

import paramiko

from lab import console_keeper, gateway, hostagent, hosts, identity, naming, netns
from lab.config import LabConfig
from lab.errors import LabError, LabFailure
from lab.host import decide, open_host
from lab.hypervisor import Hypervisor
from lab.lablock import sandbox_changes, sole_sandbox_user
from lab.paths import StatePaths
from lab.progress import Progress
from lab.sandbox import Sandbox


def down(config: LabConfig, progress: Progress) -> int:
    """Remove the lab's domains, networks, pool (volumes) and sandbox. Returns #objects."""
    plan = decide(config)
    me = identity.claim(config.lab.name, config.path, config.state_dir)
    sandbox = Sandbox()
    removed = 0
    others: list[str] = []
    if plan.use_sandbox and sandbox.state() is None:
        progress("no sandbox recorded: nothing runs for this lab here")
        if config.hosts:
            removed = _down_on_hosts(config, me, progress)
    else:
        hv = open_host(config, progress, start=True)
        assert hv is not None
        with hv, ThreadPoolExecutor(max_workers=1, thread_name_prefix="hosts") as side:
            on_hosts = side.submit(_down_on_hosts, config, me, progress)  # meanwhile
            removed = _remove_objects(hv, config, me, progress, config.pool_path)
            removed += on_hosts.result()
            others = hv.lab_object_names() + _joined(sandbox) if plan.use_sandbox else []
    if others:
        progress(f"sandbox libvirtd kept: it still holds {', '.join(others)}")
    elif plan.use_sandbox:
        _stop_sandbox(sandbox, progress)
    paths = StatePaths(config.state_dir)
    for path in (paths.inventory, paths.known_hosts):
        path.unlink(missing_ok=True)
    progress(f"lab {config.lab.name} is down ({removed} libvirt objects removed)")
    return removed


def _joined(sandbox: Sandbox) -> list[str]:
    """The veth pairs of other labs' namespace hosts in the sandbox's namespace (this
    lab's are stopped by now): stopping the sandbox would cut those hosts off."""
    return [f"the link {name} of a namespace host" for name in netns.links(sandbox.netns,
                                                                            "veth")]


def _stop_sandbox(sandbox: Sandbox, progress: Progress) -> None:
    """Stop the shared sandbox, unless another lab command is using it right now."""
    with sandbox_changes(sandbox.dir, progress):
        if not sole_sandbox_user(sandbox.dir):
            progress("sandbox kept: another lab command is using it")
            return
        had_netns = netns.exists(sandbox.netns)
        for line in sandbox.stop():
            progress(f"stopped {line}")
        if had_netns:
            progress(f"network namespace {sandbox.netns} removed")


def _down_on_hosts(config: LabConfig, me: identity.Identity, progress: Progress) -> int:
    """The lab's objects on every [[hosts]] host, then its namespace hosts stopped. An
    unreachable host is reported (its objects stay) and the others go on."""
    console_keeper.stop(config.state_dir)
    targets = hosts.targets(config, progress, start=False)
    with ThreadPoolExecutor(max_workers=max(1, len(targets)), thread_name_prefix="host") as pool:
        done = [pool.submit(_down_on_host, target, config, me, progress.on_host(target.name))
                for target in targets]
    removed = sum(fut.result() for fut in done)
    hosts.stop_namespace_hosts(config, progress)
    return removed


def _down_on_host(target: hosts.HostTarget, config: LabConfig, me: identity.Identity,
                  progress: Progress) -> int:
    """The lab's objects on one [[hosts]] host and its host agent directory there."""
    if target.kind == "namespace" and not hosts.namespace_host_running(config, target.name):
        progress("namespace host not running (nothing of the lab can be left in it)")
        return 0
    if target.kind == "namespace" and \
            not hosts.relinked_namespace_host(config, target.name, progress):
        progress("its link went with the sandbox's namespace: the lab's objects there "
                 "go with the host when it is stopped")
        return 0
    removed = 0
    try:
        with Hypervisor(target.uri, str(config.path)) as hv:
            hv.check()
            progress("removing the lab's objects")
            removed = _remove_objects(hv, config, me, progress, target.pool_path)
    except LabFailure as exc:
        progress(f"unreachable, its objects are left: {exc.summary} "
                 "(run `lab down` again once it answers)")
    remove_host_agent_dir(config.lab.name, target, progress)
    return removed


def remove_host_agent_dir(lab: str, target: hosts.HostTarget, progress: Callable[[str], None],
                          base: PurePosixPath = hostagent.AGENT_DIR) -> None:
    """Lab ``lab``'s host agent directory on ``target`` (only that one), over its
    gateway; an unreachable host is reported and its directory left. ``progress`` is
    the host's own (its lines do not name it)."""
    path = hostagent.lab_agent_dir(lab, base)
    try:
        removed = hostagent.remove_agent_dir(gateway.transport(target.gateway), path)
    except LabError as exc:
        progress(f"unreachable, the host agent's directory {path} is left: {exc.summary} "
                 "(run `lab down` again once it answers)")
        return
    except (OSError, EOFError, paramiko.SSHException) as exc:
        progress(f"the host agent's directory {path} is left: {exc} "
                 "(run `lab down` again once it answers)")
        return
    finally:
        gateway.close(target.gateway)
    progress(f"host agent directory {path} "
             + ("removed" if removed else "absent (no agent ran there)"))


def _remove_objects(hv: Hypervisor, config: LabConfig, me: identity.Identity,
                    progress: Progress, pool_path: str) -> int:
    lab = config.lab.name
    removed = 0
    foreign: list[str] = []
    states: set[str] = set()
    mine = []
    for dom, owner in hv.owned_domains(lab):
        if not identity.owns(me, lab, owner.lab, owner.install):
            foreign.append(f"domain {dom.name()}")
            states.add(owner.state_dir or "?")
            continue
        mine.append((dom, owner))

    def remove(dom: Any, run: str) -> None:
        hv.remove_domain(dom)  # each QEMU takes a second or two to end: all at once
        progress(f"domain {dom.name()} (run {run}) removed with its snapshots")

    with ThreadPoolExecutor(max_workers=max(1, len(mine)), thread_name_prefix="down") as pool:
        done = [pool.submit(remove, dom, owner.run) for dom, owner in mine]
    for fut in done:
        fut.result()  # the first failure, once every domain had its try
        removed += 1
    for net, owner in hv.owned_networks(lab):
        if not identity.owns(me, lab, owner.lab, owner.install):
            foreign.append(f"network {net.name()}")
            states.add(owner.state_dir or "?")
            continue
        hv.remove_network(net)
        progress(f"network {net.name()} removed")
        removed += 1
    removed += _remove_pool(hv, config, me, progress, pool_path)
    if foreign:
        progress(f"not touched: {len(foreign)} objects named for lab {lab} belong to another "
                 f"config (state dir {', '.join(sorted(states))}): {', '.join(foreign)}")
    return removed


def _remove_pool(hv: Hypervisor, config: LabConfig, me: identity.Identity,
                 progress: Progress, pool_path: str) -> int:
    lab, name = config.lab.name, naming.pool_name(config.lab.name)
    pool = hv.pool(name)
    if pool is None:
        return 0
    vols = hv.pool_volumes(pool)
    if vols is None:  # cannot start: its directory is gone, nothing in it to lose
        target = hv.pool_target(pool)
        if target != pool_path:
            progress(f"pool {name} ({target}) cannot start and is not this config's: kept")
            return 0
        hv.undefine_pool(pool)
        progress(f"pool {name} had no usable directory ({target}): definition removed")
        return 1
    if not identity.pool_is_ours(vols, lab, f"{lab}{naming.POOL_OWNER_SUFFIX}", me):
        progress(f"pool {name} exists without this lab's owner marks "
                 "(another config's, or not a lab pool): kept")
        return 0
    gone, kept = hv.remove_pool(pool, lambda v: identity.is_lab_volume(v, lab, config.vms.names))
    progress(f"pool {name} removed with {len(gone)} volumes")
    if kept:
        progress(f"kept {len(kept)} files the lab did not make in {pool_path} "
                 f"(and the directory): {', '.join(sorted(kept)[:5])}")
    return 1 + len(gone)
