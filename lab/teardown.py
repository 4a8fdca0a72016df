"""`lab down`: remove exactly what the lab made, found by its metadata, and nothing else.

Works after an interrupted `lab up` (it never relies on the inventory) and is
idempotent: a second run finds nothing and says so.
"""

from __future__ import annotations

from lab import naming, netns
from lab.config import LabConfig
from lab.host import decide, open_host
from lab.hypervisor import Hypervisor
from lab.paths import StatePaths
from lab.progress import Progress
from lab.sandbox import Sandbox


def down(config: LabConfig, progress: Progress) -> int:
    """Remove the lab's domains, networks, pool (volumes) and sandbox. Returns #objects."""
    plan = decide(config)
    sandbox = Sandbox()
    removed = 0
    others: list[str] = []
    if plan.use_sandbox and sandbox.state() is None:
        progress("no sandbox recorded: nothing runs for this lab")
    else:
        hv = open_host(config, progress, start=True)
        assert hv is not None
        with hv:
            removed = _remove_objects(hv, config, progress)
            others = hv.lab_object_names() if plan.use_sandbox else []
    if others:
        progress(f"sandbox libvirtd kept: it still holds {', '.join(others)}")
    elif plan.use_sandbox:
        had_netns = netns.exists(sandbox.netns)
        for line in sandbox.stop():
            progress(f"stopped {line}")
        if had_netns:
            progress(f"network namespace {sandbox.netns} removed")
    paths = StatePaths(config.state_dir)
    for path in (paths.inventory, paths.known_hosts):
        path.unlink(missing_ok=True)
    progress(f"lab {config.lab.name} is down ({removed} libvirt objects removed)")
    return removed


def _remove_objects(hv: Hypervisor, config: LabConfig, progress: Progress) -> int:
    lab = config.lab.name
    removed = 0
    for dom, owner in hv.owned_domains(lab):
        hv.remove_domain(dom)
        progress(f"domain {dom.name()} (run {owner.run}) removed with its snapshots")
        removed += 1
    for net, _owner in hv.owned_networks(lab):
        hv.remove_network(net)
        progress(f"network {net.name()} removed")
        removed += 1
    pool = hv.owned_pool(naming.pool_name(lab), lab)
    if pool is not None:
        vols = hv.remove_pool(pool)
        progress(f"pool {naming.pool_name(lab)} removed with {len(vols)} volumes")
        removed += 1 + len(vols)
    elif hv.pool(naming.pool_name(lab)) is not None:
        progress(f"pool {naming.pool_name(lab)} exists without this lab's owner mark: kept")
    return removed
