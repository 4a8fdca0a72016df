"""A second hypervisor host on this machine: its own namespaces, libvirtd and sshd.

The multi-host lab (issue 12) is tested here without a second machine. A
:class:`NamespaceHost` is a "host" made of

* a network namespace (``dlhost2``) joined to the controller's namespace by a veth
  pair (controller ``.1``, host ``.2`` of a private /30);
* a private mount namespace (the one ``ip netns exec`` makes) in which libvirt's
  directories -- /run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt
  and /etc/libvirt (a copy with the sandbox's qemu.conf additions) -- are directories
  under the host's state dir, so its libvirtd + virtlogd never meet the sandbox's,
  although both use the compiled-in socket paths;
* an OpenSSH server on the host address with its own host key, letting in root with
  one key the lab generated (never the user's ~/.ssh).

The controller reaches it the way it reaches a real KVM host: ``qemu+ssh://`` (or
``qemu+libssh://``) with the host key pinned in a known_hosts file the lab wrote, and
guests behind it through SSH direct-tcpip channels of that sshd. Everything it starts
is recorded by pid in ``state.json``; :meth:`NamespaceHost.stop` stops exactly those,
removes the namespace and the state dir.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

import paramiko

from lab import agent_pipes, netns, no_thp, openssh_pins
from lab.caps_cpu import CAPS_FIELD, QEMU_CAPS_CACHE, probing_cpu, release_when_serving
from lab.errors import LabError, LabFailure
from lab.hosttools import run_tool
from lab.sandbox import (
    DAEMON_CHILDREN,
    RUN_DIR,
    SANDBOX_QEMU_CONF,
    _alive_in,
    _gone,
    _q,
    _read_pid,
    _terminate,
    libvirtd_answers,
    stop_stragglers,
)
from lab.sandbox import NETNS as SANDBOX_NETNS
from lab.wait import wait_for

START_TIMEOUT = 60.0
SSHD = Path("/usr/sbin/sshd")
#: libvirt's directories that the host gets its own copy of (mount point -> state subdir)
PRIVATE_DIRS = ("/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt",
                "/var/log/libvirt", "/etc/libvirt")
#: sshd needs its privilege separation directory; private to the host like the rest
SSHD_RUN = "/run/sshd"
#: every directory the host gets its own copy of
MOUNTS = (*PRIVATE_DIRS, SSHD_RUN)
#: bash reads root's ~/.bashrc for every command sshd runs (libvirt's qemu+ssh helper,
#: the host agent): the host sees an empty one, as a fresh host's does little. This
#: machine's (pyenv's init) added 0.3-0.4 s to each such command on the namespace host
#: only, which a remote host would not pay. The file itself is never touched.
ROOT_BASHRC = "/root/.bashrc"
#: what may be left in the host's namespace after its daemons stopped (all the lab's)
HOST_CHILDREN = DAEMON_CHILDREN | {"sshd", "virt-ssh-helper"}
#: appended to the host's own libvirtd.conf copy: its log stays in its state dir
LIBVIRTD_CONF = ('\n# --- driver-lab namespace host ---\n'
                 'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n')


@dataclass(frozen=True)
class HostSpec:
    """Where a namespace host lives and how it is wired to the controller."""

    name: str = "host2"
    netns: str = "dlhost2"
    controller_netns: str = SANDBOX_NETNS
    subnet: str = "192.168.200.0/30"
    run_dir: Path = field(default=RUN_DIR / "hosts" / "host2")

    def _hosts(self) -> list[str]:
        net = ipaddress.ip_network(self.subnet)
        hosts = [str(h) for h in net.hosts()]
        if len(hosts) < 2:
            raise LabFailure(f"namespace host {self.name}: subnet {self.subnet} has no room "
                             "for two addresses", hint="use a /30 or larger")
        return hosts

    @property
    def controller_addr(self) -> str:
        return self._hosts()[0]

    @property
    def addr(self) -> str:
        return self._hosts()[1]

    @property
    def prefix(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    @property
    def veth(self) -> tuple[str, str]:
        """(controller end, host end): at most 15 characters, unique per host name."""
        return f"dl{self.name[:10]}c", f"dl{self.name[:10]}h"


@dataclass(frozen=True)
class HostState:
    """What :meth:`NamespaceHost.start` started, as recorded in ``state.json``."""

    netns: str
    libvirtd_pid: int
    virtlogd_pid: int
    sshd_pid: int
    made_mountpoints: list[str]


@dataclass(frozen=True)
class SshFiles:
    """The lab's SSH material for one host (all under its state dir)."""

    dir: Path

    @property
    def host_key(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def authorized_keys(self) -> Path:
        return self.dir / "authorized_keys"

    @property
    def sshd_config(self) -> Path:
        return self.dir / "sshd_config"

    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def ssh_command(self) -> Path:
        """`ssh` with only the lab's config (libvirt's ``command=``): pins the host key."""
        return self.dir / "ssh"


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``path`` atomically with ``mode``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    os.replace(tmp, path)


def _private_dir(spec: HostSpec, mountpoint: str) -> Path:
    return spec.run_dir / "root" / mountpoint.lstrip("/")


def prepare_tree(spec: HostSpec) -> None:
    """The host's own libvirt directories; /etc/libvirt holds only the *.conf files
    (the sandbox's persistent domains, networks and pools stay on the sandbox)."""
    for mountpoint in MOUNTS:
        _private_dir(spec, mountpoint).mkdir(parents=True, exist_ok=True)
    _private_dir(spec, SSHD_RUN).chmod(0o755)
    bashrc = _private_dir(spec, ROOT_BASHRC)
    bashrc.parent.mkdir(mode=0o700, exist_ok=True)
    _write(bashrc, "# driver-lab namespace host: empty\n")
    etc = _private_dir(spec, "/etc/libvirt")
    for conf in Path("/etc/libvirt").glob("*.conf"):
        shutil.copy2(conf, etc / conf.name)
    if Path("/etc/libvirt/nwfilter").is_dir():
        shutil.copytree("/etc/libvirt/nwfilter", etc / "nwfilter", dirs_exist_ok=True)
    for sub in ("qemu/networks/autostart", "storage/autostart", "secrets"):
        (etc / sub).mkdir(parents=True, exist_ok=True)
    # as the libvirt package lays them out on a real host (QEMU's and the consoles' logs)
    _private_dir(spec, "/var/log/libvirt").joinpath("qemu").mkdir(mode=0o700, exist_ok=True)
    _private_dir(spec, "/var/lib/libvirt").joinpath("images").mkdir(mode=0o711, exist_ok=True)
    qemu_conf = etc / "qemu.conf"
    base = qemu_conf.read_text() if qemu_conf.exists() else ""
    _write(qemu_conf, base + SANDBOX_QEMU_CONF, 0o600)
    libvirtd_conf = etc / "libvirtd.conf"
    base = libvirtd_conf.read_text() if libvirtd_conf.exists() else ""
    _write(libvirtd_conf, base + LIBVIRTD_CONF)
    seed_qemu_caps(_private_dir(spec, "/var/cache/libvirt") / "qemu" / "capabilities")


def seed_qemu_caps(dest: Path, source: Path = QEMU_CAPS_CACHE) -> list[str]:
    """Copy the controller libvirtd's cached QEMU capabilities into ``dest`` (the host's
    private cache), each only when its emulator is this machine's binary as probed (its
    ctime as recorded): the host's libvirtd then defines its first domain without
    probing QEMU again (~4 s). libvirt revalidates every file itself (binary ctime, its
    own version) and probes anew when one is stale. Returns the emulators seeded."""
    seeded: list[str] = []
    for cached in sorted(source.glob("*.xml")) if source.is_dir() else []:
        try:
            with cached.open(errors="replace") as head:
                fields = dict(CAPS_FIELD.findall(head.read(4096)))
            emulator = Path(fields["emulator"])
            fresh = int(fields["qemuctime"]) == int(emulator.stat().st_ctime)
        except (OSError, KeyError, ValueError):  # unreadable, another layout, no binary
            continue
        if fresh:
            dest.mkdir(mode=0o755, parents=True, exist_ok=True)
            tmp = dest / f".{cached.name}.{os.getpid()}.tmp"
            shutil.copy2(cached, tmp)  # keeps its mode (0600, root's)
            os.replace(tmp, dest / cached.name)
            seeded.append(str(emulator))
    return seeded


def prepare_ssh(spec: HostSpec) -> SshFiles:
    """Host key, the lab's client key, authorized_keys, known_hosts and both configs."""
    files = SshFiles(spec.run_dir / "ssh")
    files.dir.mkdir(parents=True, exist_ok=True)
    files.dir.chmod(0o700)
    for key, comment in ((files.host_key, f"driver-lab {spec.name} host key"),
                         (files.client_key, "driver-lab controller")):
        if not key.exists():
            run_tool(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                      "-f", str(key)], f"generating {key.name} for {spec.name}", timeout=30)
    client_pub = files.client_key.with_suffix(".pub").read_text().strip()
    _write(files.authorized_keys, client_pub + "\n", 0o600)
    kind, blob = files.host_key.with_suffix(".pub").read_text().split()[:2]
    _write(files.known_hosts, f"{spec.addr} {kind} {blob}\n", 0o600)
    _write(files.sshd_config, _sshd_config(spec, files), 0o600)
    write_ssh_wrapper(files.ssh_command, files.ssh_config, files.known_hosts, files.client_key)
    return files


def write_ssh_wrapper(wrapper: Path, config: Path, known_hosts: Path, key: Path) -> None:
    """``wrapper``: the system ssh with only ``config`` (the lab's key and known_hosts,
    strict host key checking, no agent, no user config) -- libvirt's ``command=``."""
    _write(config, _ssh_config(known_hosts, key), 0o600)
    _write(wrapper, f"#!/bin/sh\nexec ssh -F {_q(config)} \"$@\"\n", 0o700)


def _sshd_config(spec: HostSpec, files: SshFiles) -> str:
    return "\n".join([
        f"ListenAddress {spec.addr}:22", f"HostKey {files.host_key}",
        f"PidFile {spec.run_dir / 'sshd.pid'}", f"AuthorizedKeysFile {files.authorized_keys}",
        "PermitRootLogin prohibit-password", "AllowUsers root", "PubkeyAuthentication yes",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        # direct-tcpip channels to the guests behind this host; nothing else is forwarded
        "AllowTcpForwarding local", "AllowAgentForwarding no", "AllowStreamLocalForwarding no",
        "X11Forwarding no", "PermitTunnel no", "PrintMotd no", "StrictModes yes",
        # one controller opens many sessions at once (pytest-xdist workers)
        "MaxStartups 64:30:128", "MaxSessions 64", "ClientAliveInterval 10",
        # the instrument agent is pushed over SFTP (lab.hostagent)
        "Subsystem sftp internal-sftp", ""])


def _ssh_config(known_hosts: Path, key: Path) -> str:
    options = {**openssh_pins.pinned(str(known_hosts)), "IdentityFile": str(key),
               "BatchMode": "yes", "ConnectTimeout": "10", "ServerAliveInterval": "5",
               "ServerAliveCountMax": "3"}
    return "\n".join(["Host *", *openssh_pins.as_config(options), ""])


def parse_state(text: str) -> HostState | None:
    """``state.json``'s content; None when half-written or garbage."""
    try:
        data = json.loads(text)
        return HostState(netns=str(data["netns"]), libvirtd_pid=int(data["libvirtd_pid"]),
                         virtlogd_pid=int(data["virtlogd_pid"]),
                         sshd_pid=int(data["sshd_pid"]),
                         made_mountpoints=[str(p) for p in data["made_mountpoints"]])
    except (ValueError, KeyError, TypeError):
        return None


class NamespaceHost:
    """Start, reach and stop one namespace host."""

    def __init__(self, spec: HostSpec | None = None) -> None:
        self.spec = spec or HostSpec()
        self.state_file = self.spec.run_dir / "state.json"
        self.ssh = SshFiles(self.spec.run_dir / "ssh")
        #: the CPU libvirtd starts on (see probing_cpu); None: any
        self._startup_cpu: int | None = None

    @property
    def libvirt_socket(self) -> Path:
        """The host's libvirtd socket as the controller's filesystem sees it."""
        return _private_dir(self.spec, "/run/libvirt") / "libvirt-sock"

    def state(self) -> HostState | None:
        if not self.state_file.exists():
            return None
        return parse_state(self.state_file.read_text(errors="replace"))

    def running(self) -> bool:
        st = self.state()
        return st is not None and all(_alive_in(pid, self.spec.netns) for pid in
                                      (st.libvirtd_pid, st.virtlogd_pid, st.sshd_pid))

    def start(self) -> HostState:
        """Namespace, veth pair, private libvirt dirs, then virtlogd, libvirtd and sshd.
        A start that fails part-way is stopped again (nothing is left)."""
        spec = self._preflight()
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        made = [m for m in MOUNTS if not Path(m).exists()]
        # recorded before anything runs: a killed start is this host's to clean up
        self._record(HostState(netns=spec.netns, libvirtd_pid=0, virtlogd_pid=0, sshd_pid=0,
                               made_mountpoints=made))
        try:
            prepare_tree(spec)
            prepare_ssh(spec)
            netns.create(spec.netns)
            self._link()
            for mountpoint in made:  # a bind mount needs its mount point (empty)
                Path(mountpoint).mkdir(parents=True, mode=0o755)
            self._launch()
            d = spec.run_dir
            state = HostState(netns=spec.netns, libvirtd_pid=_read_pid(d / "libvirtd.pid"),
                              virtlogd_pid=_read_pid(d / "virtlogd.pid"),
                              sshd_pid=_read_pid(d / "sshd.pid"), made_mountpoints=made)
            self._record(state)
            wait_for(f"libvirtd of {spec.name} to answer on {self.libvirt_socket}",
                     lambda: True if libvirtd_answers(self.libvirt_socket) else None,
                     START_TIMEOUT)
            if self._startup_cpu is not None:
                release_when_serving(f"qemu+unix:///system?socket={self.libvirt_socket}",
                                     state.libvirtd_pid, f"libvirtd of {spec.name}",
                                     START_TIMEOUT)
            wait_for(f"sshd of {spec.name} to answer on {spec.addr}:22",
                     lambda: True if self._sshd_answers() else None, START_TIMEOUT)
        except LabError:
            self.stop()
            raise
        return state

    def _preflight(self) -> HostSpec:
        """Root, sshd, the controller's namespace; clean up what a killed run left."""
        spec = self.spec
        if os.geteuid() != 0:
            raise LabFailure(f"namespace host {spec.name} needs root", hint="run as root")
        if not SSHD.exists():
            raise LabFailure(f"namespace host {spec.name}: {SSHD} is not installed",
                             hint="run `make setup` (Debian package openssh-server)")
        if not netns.exists(spec.controller_netns):
            raise LabFailure(f"namespace host {spec.name}: controller namespace "
                             f"{spec.controller_netns} does not exist",
                             hint="start the lab's sandbox first (`lab up`)")
        if self.running():
            raise LabFailure(f"namespace host {spec.name} is already running",
                             hint=f"stop it first ({self.state_file})")
        if not self.state_file.exists() and \
                any(not _gone(pid) for pid in netns.pids(spec.netns)):
            raise LabFailure(f"namespace {spec.netns} is in use and {self.state_file} does "
                             "not record it", hint="stop the host that owns it first")
        if netns.exists(spec.netns) or self.state_file.exists():
            self.stop()  # what a killed run left: its daemons would hold the addresses
        return spec

    def _record(self, state: HostState) -> None:
        _write(self.state_file, json.dumps(asdict(state), indent=2))

    def linked(self) -> bool:
        """Its veth pair is there: the controller's end in the controller's namespace."""
        return self.spec.veth[0] in netns.links(self.spec.controller_netns)

    def relink(self) -> bool:
        """The veth pair of a running host made again when the controller's namespace lost
        its end (the sandbox was stopped and started again since: its VMs and libvirt
        objects are all still there, only unreachable). True when it was made again;
        LabFailure when the controller's namespace does not exist."""
        spec = self.spec
        if not netns.exists(spec.controller_netns):
            raise LabFailure(f"namespace host {spec.name}: controller namespace "
                             f"{spec.controller_netns} does not exist",
                             hint="start the lab's sandbox first (`lab up`)")
        if self.linked():
            return False
        netns.delete_link(spec.netns, spec.veth[1])  # its peer's namespace is gone
        self._link()
        return True

    def _link(self) -> None:
        """The veth pair: controller end in the controller's namespace, host end in ours."""
        spec = self.spec
        ctl, host = spec.veth
        ctl_ns = spec.controller_netns
        netns.delete_link(ctl_ns, ctl)  # left by a killed run
        netns.ip("-n", ctl_ns, "link", "add", ctl, "type", "veth",
                 "peer", "name", host, "netns", spec.netns)
        for ns, dev, addr in ((ctl_ns, ctl, spec.controller_addr), (spec.netns, host, spec.addr)):
            netns.ip("-n", ns, "addr", "add", f"{addr}/{spec.prefix}", "dev", dev)
            netns.ip("-n", ns, "link", "set", dev, "up")

    def _launch(self) -> None:
        """Bind the private dirs in the mount namespace `ip netns exec` makes, start the
        daemons from there: they all share it (and so do sshd's sessions)."""
        d = self.spec.run_dir
        script = ["set -e"]
        script += [f"mount --bind {_q(_private_dir(self.spec, m))} {_q(Path(m))}"
                   for m in (*MOUNTS, *([ROOT_BASHRC] if Path(ROOT_BASHRC).is_file() else []))]
        for name in ("virtlogd", "libvirtd", "sshd"):
            (d / f"{name}.pid").unlink(missing_ok=True)
        self._startup_cpu = probing_cpu(_private_dir(self.spec, "/var/cache/libvirt")
                                        / "qemu" / "capabilities")
        pin = "" if self._startup_cpu is None else f"taskset -c {self._startup_cpu} "
        script += [f"virtlogd -d -p {_q(d / 'virtlogd.pid')}",
                   f"{pin}{no_thp.prefix()}libvirtd -d -p {_q(d / 'libvirtd.pid')}",
                   f"{SSHD} -f {_q(self.ssh.sshd_config)} -E {_q(d / 'sshd.log')}"]
        try:
            subprocess.run(["ip", "netns", "exec", self.spec.netns, "sh", "-c",
                            "\n".join(script)], check=True, capture_output=True, text=True,
                           timeout=START_TIMEOUT)
        except subprocess.CalledProcessError as exc:
            # sshd logs to its -E file, which stop() removes with the state dir: quote it
            log = d / "sshd.log"
            said = exc.stderr.strip() or (log.read_text(errors="replace").strip()
                                          if log.exists() else "")
            raise LabFailure(f"starting namespace host {self.spec.name} failed: "
                             f"{said[-800:]}", hint="fix what the daemon said, then start again "
                             "(the half-started host is removed)") from None
        except subprocess.TimeoutExpired:
            raise LabFailure(f"starting namespace host {self.spec.name} did not return "
                             f"within {START_TIMEOUT:.0f}s", hint=f"see {d}/sshd.log") from None

    def _sshd_answers(self) -> bool:
        with netns.inside(self.spec.controller_netns), \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            try:
                sock.connect((self.spec.addr, 22))
                return sock.recv(4).startswith(b"SSH-")
            except OSError:
                return False

    def in_host(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the host: its network and its mount namespace."""
        st = self.state()
        if st is None:
            raise LabFailure(f"namespace host {self.spec.name} is not running",
                             hint="start it first")
        return ["nsenter", f"--net={netns.NETNS_DIR / st.netns}",
                f"--mount=/proc/{st.libvirtd_pid}/ns/mnt", "--", *argv]

    def uri(self, transport: str = "ssh") -> str:
        """The libvirt URI of the host, its key pinned.

        ``ssh`` runs the system ssh, which ignores libvirt's ``known_hosts`` parameter:
        ``command=`` points it at a wrapper that uses only the lab's ssh_config (lab key,
        lab known_hosts, StrictHostKeyChecking yes). ``libssh`` is libvirt's built-in
        client, which takes ``known_hosts`` itself.
        """
        key = quote(str(self.ssh.client_key), safe="/")
        known = quote(str(self.ssh.known_hosts), safe="/")
        base = f"root@{self.spec.addr}/system?keyfile={key}"
        if transport == "ssh":
            command = quote(str(self.ssh.ssh_command), safe="/")
            return f"qemu+ssh://{base}&no_tty=1&no_verify=0&command={command}"
        if transport == "libssh":
            return (f"qemu+libssh://{base}&known_hosts={known}&known_hosts_verify=normal"
                    "&sshauth=privkey")
        raise LabFailure(f"namespace host {self.spec.name}: unknown transport {transport!r}",
                         hint="use ssh or libssh")

    def ssh_client(self, timeout: float = 10.0) -> paramiko.SSHClient:
        """A paramiko client logged in as root on the host, its key pinned (the
        controller's namespace: the TCP socket is made there)."""
        with netns.inside(self.spec.controller_netns):
            sock = socket.create_connection((self.spec.addr, 22), timeout=timeout)
        # requests on it are small and waited for (the instrument agent's lines)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.load_host_keys(str(self.ssh.known_hosts))
        try:
            client.connect(self.spec.addr, username="root",
                           key_filename=str(self.ssh.client_key), look_for_keys=False,
                           allow_agent=False, sock=sock, timeout=timeout,
                           banner_timeout=timeout, auth_timeout=timeout)
        except (OSError, paramiko.SSHException) as exc:
            sock.close()
            raise LabFailure(f"SSH to namespace host {self.spec.name} ({self.spec.addr}) "
                             f"failed: {exc}", hint=f"see {self.spec.run_dir}/sshd.log") from None
        return client

    def openssh(self) -> list[str]:
        """The OpenSSH client command that logs in as root here, as :meth:`ssh_client`
        does (its key pinned); run it in the controller's namespace."""
        return agent_pipes.openssh_argv(address=self.spec.addr, port=22, user="root",
                                        key_file=str(self.ssh.client_key),
                                        known_hosts=str(self.ssh.known_hosts),
                                        connect_timeout_s=10.0)

    def stop(self) -> list[str]:
        """Stop what :meth:`start` started (by pid), what its daemons left in the
        namespace, the veth pair, the namespace and the state dir. One line each."""
        spec = self.spec
        stopped: list[str] = []
        st = self.state()
        if st is not None:
            for name, pid in (("sshd", st.sshd_pid), ("libvirtd", st.libvirtd_pid),
                              ("virtlogd", st.virtlogd_pid)):
                if _alive_in(pid, spec.netns):
                    _terminate(pid)
                    stopped.append(f"{name} (pid {pid})")
        stopped += stop_stragglers(spec.netns, HOST_CHILDREN, {os.getpid()})
        ctl = spec.veth[0]
        if netns.delete_link(spec.controller_netns, ctl):
            stopped.append(f"veth {ctl}")
        if netns.exists(spec.netns):
            netns.delete(spec.netns)
            stopped.append(f"namespace {spec.netns}")
        for mountpoint in st.made_mountpoints if st else []:
            with contextlib.suppress(OSError):  # in use by now (a libvirtd started since)
                os.rmdir(mountpoint)
        if spec.run_dir.exists():
            shutil.rmtree(spec.run_dir)
        with contextlib.suppress(OSError):  # hosts/ itself, once its last host is gone
            spec.run_dir.parent.rmdir()
        return stopped


