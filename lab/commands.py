"""Sub-commands for the lab's life cycle: images, up, down, status, ssh, console, config."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

from lab import config as config_mod
from lab import inventory, netns, openssh_pins, route_guard
from lab.config import LabConfig, load_config
from lab.errors import LabFailure
from lab.gateway import Gateway
from lab.guest import Guest, GuestAddress
from lab.host import enter_existing, open_host
from lab.hypervisor import Hypervisor
from lab.lab_ref import down_text, lab_ref, read_inventory, up_command
from lab.lablock import exclusive
from lab.paths import StatePaths
from lab.progress import Progress
from lab.sandbox import Sandbox

#: Where the pytest plugin puts run folders (lab.run_session.ARTIFACTS, relative to cwd).
ARTIFACTS = Path("artifacts")
#: ``--html`` without FILE: report.html in the run folder.
REPORT_IN_RUN = Path("<run folder>/report.html")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("images", help="build (micro Linux) or check (Windows) the golden image")
    p.add_argument("--force", action="store_true", help="rebuild even if up to date (micro)")
    p.set_defaults(func=cmd_images)
    sub.add_parser("up", help="bring the lab up (idempotent)").set_defaults(func=cmd_up)
    sub.add_parser("down", help="remove everything the lab made").set_defaults(func=cmd_down)
    sub.add_parser("status", help="table of the lab's VMs").set_defaults(func=cmd_status)
    p = sub.add_parser("ssh", help="shell or command in a VM over the management NIC")
    p.add_argument("vm")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="command (default: interactive shell)")
    p.set_defaults(func=cmd_ssh)
    p = sub.add_parser("console", help="attach to a VM's serial console (virsh console), or "
                                       "follow its log without a terminal (--follow)")
    p.add_argument("vm")
    p.add_argument("-f", "--follow", action="store_true",
                   help="print the console log's last lines, then what the VM writes, until "
                        "Ctrl-C or --for; needs no terminal (CI logs, a second shell)")
    p.add_argument("--for", dest="follow_for", metavar="SECONDS", type=float, default=None,
                   help="with --follow: stop after SECONDS (default: until Ctrl-C)")
    p.add_argument("-n", "--lines", type=int, default=20,
                   help="with --follow: lines of history to print first (default 20)")
    p.set_defaults(func=cmd_console)
    p = sub.add_parser("report", help="summary table of a scenario run (JUnit XML)")
    p.add_argument("--junit", default=None, type=Path,
                   help="report this JUnit XML (default: the latest run of the lab named by "
                        "--config, artifacts/<lab>/latest)")
    p.add_argument("--run", metavar="DIR", type=Path, default=None,
                   help="report this run folder (artifacts/<lab>/runs/<run id>)")
    p.add_argument("--html", metavar="FILE", type=Path, nargs="?", const=REPORT_IN_RUN,
                   default=None, help="also write a self-contained HTML report to FILE "
                                      "(no FILE: report.html in the run folder)")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("config", help="print every lab.toml key with its default and meaning")
    p.set_defaults(func=cmd_config)


def _config(args: argparse.Namespace) -> LabConfig:
    return load_config(args.config)


def _progress(cfg: LabConfig) -> Progress:
    return Progress(log=StatePaths(cfg.state_dir).lab_log)


def _up_progress(cfg: LabConfig) -> Progress:
    """`lab up`'s progress: a live per-VM table on a terminal, else plain lines."""
    from lab.plan import make_plan
    from lab.progress_live import lab_progress

    paths = StatePaths(cfg.state_dir)
    return lab_progress(paths.lab_log, [vm.name for vm in make_plan(cfg).vms],
                        paths.console_log)


def cmd_images(args: argparse.Namespace) -> int:
    from lab.guests import guest_kind
    from lab.guests.linux_micro import LinuxMicro

    cfg = _config(args)
    kind = guest_kind(cfg)
    with exclusive(cfg, "images", _progress(cfg)):
        if args.force and isinstance(kind, LinuxMicro):
            from lab.guests.micro_image import build_image

            build_image(cfg.image.kernel_package, cfg.state_dir, cfg.image.disk_size_mib,
                        _progress(cfg), force=True, check_tree=kind.check_kernel_tree)
        kind.check()
        img = kind.prepare_image(_progress(cfg))
    boot = f"  kernel: {img.kernel}\n  initrd: {img.initrd}\n" if img.kernel else ""
    print(f"{kind.name} image {img.digest}\n{boot}  golden disk: {img.disk}\n"
          f"  host key: {img.host_key_line}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from lab.provision import up

    cfg = _config(args)
    with _up_progress(cfg) as progress, exclusive(cfg, "up", progress):
        inv = up(cfg, progress)
    print(status_table(inv, None))
    print(f"\ninventory: {StatePaths(cfg.state_dir).inventory}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from lab.teardown import down

    cfg = _config(args)
    progress = _progress(cfg)
    with exclusive(cfg, "down", progress):
        down(cfg, progress)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _config(args)
    inv_path = StatePaths(cfg.state_dir).inventory
    if not inv_path.exists():
        print(down_text(cfg, "is down"))
        return 0
    inv = inventory.read(inv_path)
    print(lab_ref(cfg))
    hv = open_host(cfg, Progress(quiet=True), start=False)
    if hv is None:
        dead = Sandbox().dead_daemons() if netns.exists(Sandbox().netns) else []
        state = f"{dead[-1]} gone" if dead else "sandbox stopped"
        print(status_table(inv, {vm.name: state for vm in inv.vms}))
        if dead:
            print(f"the lab's sandbox lost {' and '.join(dead)}; its VMs may still run: "
                  f"`{up_command(cfg)}` restarts {'it' if len(dead) == 1 else 'them'} and "
                  "keeps them")
        return 1
    states: dict[str, str] = {}
    rss: dict[str, int | None] = {}
    with hv:
        for vm in inv.vms:
            if vm.host == "local":
                states[vm.name], rss[vm.name] = _vm_state(hv, vm)
    for host in inv.hosts:  # each other host through its own connection
        try:
            with Hypervisor(host.uri, str(cfg.path)) as remote:
                remote.check()
                for vm in inv.vms:
                    if vm.host == host.name:
                        states[vm.name], rss[vm.name] = _vm_state(remote, vm)
        except LabFailure as exc:
            states.update({vm.name: "host unreachable" for vm in inv.vms
                           if vm.host == host.name})
            print(f"host {host.name} unreachable: {exc.summary}")
    print(status_table(inv, states, rss))
    return 0


def _vm_state(hv: Hypervisor, vm: inventory.VmEntry) -> tuple[str, int | None]:
    """The VM's state in words and its QEMU's resident memory (KiB; None: not running)."""
    dom = hv.domain(vm.domain)
    if dom is None:
        return "missing", None
    live = {n["alias"] for n in hv.interfaces(dom)}
    return (hv.describe_state(dom) + "".join(f" [{n.alias[3:]} unplugged]" for n in vm.nics
                                             if n.alias not in live), hv.rss_kib(dom))


def status_table(inv: inventory.Inventory, states: dict[str, str] | None,
                 rss: dict[str, int | None] | None = None) -> str:
    """One row per VM; a HOST column when the lab spans several hypervisor hosts; a QEMU
    RSS column (its resident memory; "-" when it has none) when ``rss`` is given."""
    multi = bool(inv.hosts)
    rows = [(*(("HOST",) if multi else ()), "VM", "STATE",
             *(("RSS",) if rss is not None else ()), "MANAGEMENT", "TEST NICS")]
    for vm in inv.vms:
        tests = "  ".join(f"{n.alias[3:]}={n.address}({n.model})" for n in vm.test_nics)
        state = states.get(vm.name, "?") if states is not None else "running"
        kib = rss.get(vm.name) if rss is not None else None
        memory = (() if rss is None else (f"{kib / 1024:.0f} MiB" if kib else "-",))
        rows.append((*((vm.host,) if multi else ()), vm.name, state, *memory,
                     vm.mgmt.address, tests))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=False)) + "  "
                     + r[-1] for r in rows)


def guest_address(inv: inventory.Inventory, vm_name: str) -> GuestAddress:
    return GuestAddress.of(inv, inv.vm(vm_name))


def interactive_ssh_argv(ssh: str, addr: GuestAddress, known_hosts: Path) -> list[str]:
    """OpenSSH to a guest reading no ssh_config (-F: no user ProxyCommand, HostName, Port)
    and trusting only the lab's pinned host key. A guest behind a gateway is reached
    through a ProxyCommand that is the same kind of isolated OpenSSH to the gateway
    (its own pinned key, the gateway's key file), forwarding with -W."""
    proxy = "none" if addr.gateway is None else _gateway_proxy_command(ssh, addr.gateway)
    options = {**openssh_pins.pinned(str(known_hosts)), "ProxyCommand": proxy,
               "ProxyJump": "none"}
    return [ssh, "-F", os.devnull, "-i", str(addr.key_file), *openssh_pins.as_argv(options),
            *(["-p", str(addr.port)] if addr.port != 22 else []), f"{addr.user}@{addr.host}"]


def _gateway_proxy_command(ssh: str, gw: Gateway) -> str:
    """The gateway hop as one ProxyCommand line: run by the user's shell (hence quoted),
    with ssh's %-tokens escaped (twice in paths the hop's ssh expands again); %h:%p is
    the guest."""
    key, known = (path.replace("%", "%%") for path in (gw.key_file, gw.known_hosts))
    options = {**openssh_pins.pinned(known), "ProxyCommand": "none", "ProxyJump": "none",
               "BatchMode": "yes", "ConnectTimeout": "10", "ServerAliveInterval": "5"}
    argv = [ssh, "-F", os.devnull, "-i", key, *openssh_pins.as_argv(options),
            "-p", str(gw.port), "-W", "%h:%p", f"{gw.user}@{gw.address}"]
    return " ".join(shlex.quote(arg).replace("%", "%%") if arg != "%h:%p" else arg
                    for arg in argv)


def cmd_ssh(args: argparse.Namespace) -> int:
    cfg = _config(args)
    inv = read_inventory(cfg)
    addr = guest_address(inv, args.vm)
    enter_existing(cfg)
    # Interactive or not, the session starts inside the lab: in its namespace (gone after a
    # host reboot: refused, never sent out through the host's default route) and via the
    # management bridge.
    if addr.gateway is None:
        route_guard.require_lab_target(inv, addr.host, f"lab ssh {args.vm}")
    else:  # its network is on the gateway's host: the gateway is what must be in the lab
        route_guard.require_gateway_target(inv, addr.host, addr.gateway.address,
                                           f"lab ssh {args.vm}")
    if not args.cmd:
        ssh = shutil.which("ssh")
        if ssh is None:
            raise LabFailure("an interactive shell needs the OpenSSH client",
                             hint="apt-get install openssh-client, or pass a command")
        os.execv(ssh, interactive_ssh_argv(ssh, addr, Path(inv.known_hosts)))
    with Guest(addr) as guest:
        res = guest.run(" ".join(args.cmd), check=False, timeout=600)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.exit_code


def cmd_console(args: argparse.Namespace) -> int:
    cfg = _config(args)
    inv = read_inventory(cfg)
    vm = inv.vm(args.vm)
    if args.follow or args.follow_for is not None:
        from lab.console_follow import follow

        print(f"console log of {vm.name} ({lab_ref(cfg)}): {vm.console_log}", file=sys.stderr)
        follow(Path(vm.console_log), sys.stdout.buffer, args.lines, args.follow_for)
        return 0
    if not sys.stdin.isatty():
        raise LabFailure("`lab console` attaches to the console and needs a terminal",
                         hint=f"use `lab console {vm.name} --follow` to follow its log")
    virsh = shutil.which("virsh")
    if virsh is None:
        raise LabFailure("virsh is not installed", hint="run `make setup`")
    print(f"console of {vm.domain} (leave with Ctrl+]); log: {vm.console_log}", file=sys.stderr)
    # --force: on another host the lab's console keeper holds the console stream (it
    # leaves it to this session and takes it back when the session ends)
    force = ["--force"] if vm.host != "local" else []
    os.execv(virsh, [virsh, "-c", inv.uri_of(vm), "console", *force, vm.domain])


def cmd_config(args: argparse.Namespace) -> int:
    load_config(args.config)  # validate what is there
    print(config_mod.explain())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from lab import report, runs

    cfg = _config(args)
    run: runs.RunRecord | None = None
    if args.junit is not None:
        junit: Path = args.junit
        print(f"JUnit {junit} (given with --junit; lab {cfg.lab.name}, "
              f"state dir {cfg.state_dir})")
    else:
        run = (runs.read_run(args.run) if args.run is not None
               else runs.latest_run(ARTIFACTS, cfg.lab.name))
        print(report.run_header(run))
        if run.start.config != str(cfg.path):
            print(f"note: that run used config {run.start.config}, not {cfg.path} (same lab "
                  f"name {cfg.lab.name}); its state dir is the one above")
        junit = Path(run.start.junit)
    if not junit.exists() and run is not None:
        print(f"no JUnit XML ({junit} does not exist)\n{report.run_state(run)}")
        return 1
    if not junit.exists():
        raise LabFailure(f"{junit} does not exist", hint="run the scenario suite first "
                         "(make lab)")
    state_dir = Path(run.start.state_dir) if run is not None else cfg.state_dir
    print(report.summary(junit, StatePaths(state_dir).lease_log, run))
    if run is not None:
        print(report.run_state(run))
    if args.html is not None:
        from lab.report_html import write_html

        out = args.html
        if out == REPORT_IN_RUN:
            out = (run.folder if run is not None else junit.parent) / "report.html"
        lines = (*report.run_header(run).splitlines(), *report.run_state(run).splitlines()) \
            if run is not None else ()
        warn = run is not None and run.state != "complete"
        print(f"HTML report: {write_html(junit, out, lines, warn)}")
    return 0 if run is None or run.state == "complete" else 1
