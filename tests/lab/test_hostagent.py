"""Host-side instruments on another host through the agent (lab/hostagent.py), for real.

A namespace host (lab/nshost.py: its own network + mount namespace, sshd) and a
controller namespace of this module's own (``dlctlia``). Both get the same kind of
target: a TCP echo server on an address only that namespace has, and a veth pair
with an L2 echo responder on one end. :class:`LocalInstruments` probes and loads the
controller's targets in-process; :class:`RemoteInstruments` does the same to the host's
targets through the agent zipapp it pushes over SFTP and runs with the host's own
``python3`` (no venv there: the zipapp must be self-contained). Results must agree in
type and shape, and with what the echo servers saw.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

import paramiko
import pytest
from labtier import L2_RESPONDER, REPO, require_lab_host

from lab import agent_pipes, netns
from lab.agent_pipes import ChannelPipe, ProcessPipe
from lab.errors import DriverFailure, LabError, LabFailure, OutsideLab
from lab.gateway import Gateway
from lab.hostagent import (
    Clients,
    Instruments,
    LocalInstruments,
    RemoteInstruments,
    build_agent,
    lab_agent_dir,
)
from lab.hosts import HostTarget
from lab.l2probe import ProbeReply
from lab.load import ErrorClass, LoadResult, LoadSpec, Target
from lab.nshost import HostSpec, NamespaceHost
from lab.sandbox import RUN_DIR, wait_gone
from lab.teardown import remove_host_agent_dir

CONTROLLER_NS = "dlctlia"
HOST_SPEC = dict(name="hia", netns="dlhostia", subnet="192.168.200.16/30")
RUN_PARENT = RUN_DIR / "hostagent-test"
#: the lab the remote instruments work for, and its bridge (named as the lab names them)
LAB = "dlia"
BRIDGE = "dlia-t0"
#: the target address: on that bridge, in each namespace, that only it can reach
TARGET_ADDR = "192.168.201.1"
ECHO_PORT = 7001  # ECHO_PORT + 1: accepts, reads, never echoes (a stall)
PROBE_IF, RESPONDER_IF = "dliap0", "dliar0"
RESPONDER_MAC = "02:00:5e:10:20:30"
NOBODY_MAC = "02:00:5e:10:20:99"
#: behind the lab bridge in each namespace (a route to it), held by nobody: ARP unanswered
ABSENT_ADDR = "192.168.201.2"

#: echoes on port P, swallows on P+1; "report" on stdin -> echoed bytes and how many
#: connections ended with a FIN, a RST or another error, once none is live (or 10 s)
ECHO_SERVER = """import json, socket, sys, threading, time
addr, port = sys.argv[1], int(sys.argv[2]); lock = threading.Lock()
st = {"echoed": 0, "live": 0, "fin": 0, "rst": 0, "err": 0}
def serve(c, echo):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms tail (delayed ACK)
    with lock: st["live"] += 1
    end = "fin"  # how the peer ended it, as this kernel saw it
    try:
        while d := c.recv(65536):
            if echo:
                c.sendall(d)
                with lock: st["echoed"] += len(d)
    except ConnectionResetError: end = "rst"
    except OSError: end = "err"
    finally:
        c.close()
        with lock: st["live"] -= 1; st[end] += 1
def listen(p, echo):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, p)); s.listen(64)
    def loop():
        while True: threading.Thread(target=serve, args=(s.accept()[0], echo), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
listen(port, True); listen(port + 1, False); print("ready", flush=True)
for line in sys.stdin:
    end = time.monotonic() + 10
    while st["live"] and time.monotonic() < end: time.sleep(0.05)
    with lock: print(json.dumps(st), flush=True)
"""

@dataclass
class Side:
    """One namespace's targets and the instruments that reach them."""

    ns: str
    instruments: Instruments
    echo: subprocess.Popen[str]
    responder_ifindex: int
    #: the namespace this thread enters to run the instruments (local ones: in-process)
    enter: str | None

    def _there(self) -> contextlib.AbstractContextManager[None]:
        return netns.inside(self.enter) if self.enter else contextlib.nullcontext()

    def run_load(self, spec: LoadSpec) -> LoadResult:
        with self._there():
            return self.instruments.run_load(spec)

    def probe(self, mac: str, timeout: float = 2.0, bridge: str = BRIDGE
              ) -> ProbeReply | None:
        with self._there():
            return self.instruments.l2_probe(bridge, mac, timeout=timeout)

    def open_clients(self, count: int, port: int = ECHO_PORT) -> Clients:
        with self._there():
            return self.instruments.open_clients([TARGET_ADDR] * count, port, "wskecho", 5.0)

    def carries_ip(self, address: str) -> bool:
        with self._there():
            return self.instruments.carries_ip(address, timeout=1.0)

    def report(self) -> dict[str, int]:
        """The echo server's counters, once no connection is live (or 10 s)."""
        assert self.echo.stdin is not None and self.echo.stdout is not None
        self.echo.stdin.write("report\n")
        self.echo.stdin.flush()
        return {k: int(v) for k, v in json.loads(self.echo.stdout.readline()).items()}

    def echoed(self) -> int:
        return self.report()["echoed"]


def start_targets(ns: str, launch: Callable[[list[str]], list[str]],
             procs: list[subprocess.Popen[str]]) -> tuple[subprocess.Popen[str], int]:
    """Target address (on the lab bridge), veth pair (one end a port of the bridge, the
    L2 responder on the other), echo server in ``ns``."""
    netns.ip("-n", ns, "link", "add", BRIDGE, "type", "bridge")
    netns.ip("-n", ns, "addr", "add", f"{TARGET_ADDR}/32", "dev", BRIDGE)
    netns.ip("-n", ns, "link", "add", PROBE_IF, "type", "veth", "peer", "name", RESPONDER_IF)
    netns.ip("-n", ns, "link", "set", PROBE_IF, "master", BRIDGE)
    netns.ip("-n", ns, "link", "set", RESPONDER_IF, "address", RESPONDER_MAC)
    for dev in (BRIDGE, PROBE_IF, RESPONDER_IF):
        netns.ip("-n", ns, "link", "set", dev, "up")
    for script, args in ((ECHO_SERVER, [TARGET_ADDR, str(ECHO_PORT)]),
                         (L2_RESPONDER, [RESPONDER_IF, str(REPO)])):
        proc = subprocess.Popen(launch([sys.executable, "-c", script, *args]), text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n", script[:40]
    link = json.loads(netns.ip("-n", ns, "-j", "link", "show", RESPONDER_IF))
    return procs[-2], int(link[0]["ifindex"])


#: How the controller talks to an agent: the OpenSSH client (what the lab uses where ssh
#: is installed) or an exec channel of its paramiko connection (the fallback). Every test
#: runs on the OpenSSH pipe; the tests of what a pipe decides (an agent's start, answer,
#: death, exit and pool) run on both.
PIPES = ("openssh", "channel")
ON_BOTH_PIPES = pytest.mark.parametrize("sides", PIPES, indirect=True)
ON_OPENSSH = pytest.mark.parametrize("sides", PIPES[:1], indirect=True)


@pytest.fixture(scope="module")
def sides(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Side, Side, NamespaceHost]]:
    pipe = request.param
    require_lab_host("sshd", "nsenter", "ssh-keygen", *(["ssh"] if pipe == "openssh" else []))
    netns.delete(CONTROLLER_NS)  # left by a killed run
    netns.create(CONTROLLER_NS)
    host = NamespaceHost(HostSpec(controller_netns=CONTROLLER_NS, run_dir=RUN_PARENT / "hia",
                                  **HOST_SPEC))
    procs: list[subprocess.Popen[str]] = []
    client: paramiko.SSHClient | None = None
    remote_instruments: RemoteInstruments | None = None
    try:
        host.start()
        client = host.ssh_client()
        transport = client.get_transport()
        assert transport is not None
        echo, index = start_targets(CONTROLLER_NS, lambda a: ["ip", "netns", "exec",
                                                         CONTROLLER_NS, *a], procs)
        local = Side(CONTROLLER_NS, LocalInstruments(), echo, index, CONTROLLER_NS)
        echo, index = start_targets(host.spec.netns, host.in_host, procs)
        ssh = host.openssh() if pipe == "openssh" else None
        with netns.inside(CONTROLLER_NS):  # an agent's ssh connects from there
            remote_instruments = RemoteInstruments("hia", transport, agent_dir=agent_dir(host),
                                                   cache_dir=tmp_path_factory.mktemp("agent"),
                                                   lab=LAB, ssh=ssh)
        remote = Side(host.spec.netns, remote_instruments, echo, index, None)
        yield local, remote, host
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
        if remote_instruments is not None:
            remote_instruments.close()
        if client is not None:
            client.close()
        host.stop()
        netns.delete(CONTROLLER_NS)
    assert not RUN_PARENT.exists()
    assert not netns.exists(host.spec.netns)


def another(remote: Side, **kw: Any) -> RemoteInstruments:
    """New instruments on the host of ``remote``'s, over the same connection and pipe."""
    assert isinstance(remote.instruments, RemoteInstruments)
    with netns.inside(CONTROLLER_NS):
        return RemoteInstruments("hia", remote.instruments.transport,
                                 ssh=remote.instruments.ssh, **kw)


def agent_base(host: NamespaceHost) -> PurePosixPath:
    """Where agents live, inside the host's state dir (removed by its stop)."""
    return PurePosixPath(host.spec.run_dir / "var-lib-driver-lab" / "agent")


def agent_dir(host: NamespaceHost, lab: str = LAB) -> PurePosixPath:
    """Lab ``lab``'s agent directory there (as `lab down` names it)."""
    return lab_agent_dir(lab, agent_base(host))


def _spec(port: int = ECHO_PORT, **kw: object) -> LoadSpec:
    base: dict[str, object] = dict(connections=2, duration=None,
                                   bytes_per_connection=1 << 20, progress=False)
    base.update(kw)
    return LoadSpec(targets=(Target(TARGET_ADDR, port),), **base)  # type: ignore[arg-type]


def _shape(result: LoadResult) -> tuple[object, ...]:
    return (type(result), [f.name for f in fields(result)], result.mode, len(result.targets),
            len(result.connections), result.bytes_echoed, result.bytes_sent, result.ok)


@ON_BOTH_PIPES
def test_load_through_the_agent_matches_the_echo_server_and_local(
        sides: tuple[Side, Side, NamespaceHost]) -> None:
    local, remote, _ = sides
    got: dict[str, LoadResult] = {}
    timings: dict[str, float] = {}
    for side in (local, remote):
        before = side.echoed()
        t0 = time.monotonic()
        result = side.run_load(_spec())
        timings[side.ns] = time.monotonic() - t0
        assert result.ok, result.errors
        assert result.bytes_echoed == 2 << 20
        assert side.echoed() - before == result.bytes_echoed  # what the server echoed
        got[side.ns] = result
    assert _shape(got[local.ns]) == _shape(got[remote.ns])
    assert isinstance(remote.instruments, RemoteInstruments)
    assert remote.instruments.pushes == 1
    pyz = Path(str(remote.instruments.ensure_agent()))
    assert pyz.parent.name == build_agent(remote.instruments.cache_dir).hash
    assert pyz.stat().st_mode & 0o777 == 0o600
    assert pyz.parent.stat().st_mode & 0o777 == 0o700
    print(f"2 MiB load: local {timings[local.ns] * 1000:.0f} ms, "
          f"through the agent {timings[remote.ns] * 1000:.0f} ms (first: with the push)")


@ON_OPENSSH
def test_a_stall_is_the_same_verdict_on_both_sides(
        sides: tuple[Side, Side, NamespaceHost]) -> None:
    """Swallowed bytes: a TIMEOUT (stall) error class either way, never a lab error."""
    local, remote, _ = sides
    for side in (local, remote):
        spec = _spec(ECHO_PORT + 1, connections=1, stall_timeout=0.5)
        result = side.run_load(spec)
        assert [e.cls for e in result.errors] == [ErrorClass.TIMEOUT], (side.ns, result.errors)


@ON_OPENSSH
def test_l2_probe_answers_and_times_out_alike(sides: tuple[Side, Side, NamespaceHost]) -> None:
    local, remote, _ = sides
    for side in (local, remote):
        reply = side.probe(RESPONDER_MAC)
        assert isinstance(reply, ProbeReply), (side.ns, reply)
        assert (reply.mac, reply.ifindex) == (RESPONDER_MAC, side.responder_ifindex)
        assert 0 < reply.rtt_s < 2.0
        t0 = time.monotonic()
        assert side.probe(NOBODY_MAC, timeout=0.3) is None
        assert 0.3 <= time.monotonic() - t0 < 5.0


@ON_OPENSSH
def test_an_instrument_error_keeps_its_class(sides: tuple[Side, Side, NamespaceHost]) -> None:
    local, remote, _ = sides
    caught: list[LabError] = []
    for side in (local, remote):
        with pytest.raises(LabError) as info:
            side.probe(RESPONDER_MAC, bridge="dlnosuch0")
        caught.append(info.value)
    here, there = caught
    assert type(here) is type(there) is LabFailure
    assert there.summary == f"host hia: {here.summary}"
    assert there.hint == here.hint


@ON_BOTH_PIPES
def test_each_agent_runs_over_the_pipe_asked_for(
        sides: tuple[Side, Side, NamespaceHost]) -> None:
    """With ``ssh`` given, an agent is a child ssh client of this process (OpenSSH's
    own host key check against the pinned file passed: it answers); without, a channel."""
    _, remote, _ = sides
    assert isinstance(remote.instruments, RemoteInstruments)
    agent = remote.instruments._take("l2probe", time.monotonic() + 10)
    try:
        doc = remote.instruments._ask(agent, "l2probe", {"bridge": BRIDGE, "mac": NOBODY_MAC,
                                                         "timeout": 0.05, "lab": LAB},
                                      (time.monotonic() + 10, 10.0))
        assert doc == {"ok": True, "result": None}
        if remote.instruments.ssh is None:
            assert isinstance(agent.pipe, ChannelPipe)
        else:
            assert isinstance(agent.pipe, ProcessPipe)
            assert Path(f"/proc/{agent.pipe.proc.pid}/exe").resolve().name == "ssh"
    finally:
        agent.close()
    assert agent.pipe.ended()


@ON_OPENSSH
def test_the_openssh_pipe_refuses_a_host_key_other_than_the_pinned_one(
        sides: tuple[Side, Side, NamespaceHost], tmp_path: Path) -> None:
    """The agent's ssh checks the host's key against the lab's pinned file only: another
    key there is one LabFailure line with ssh's own words, and no agent starts."""
    _, remote, host = sides
    assert isinstance(remote.instruments, RemoteInstruments)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{host.spec.addr} {(tmp_path / 'k.pub').read_text().split(' ')[0]} "
                     f"{(tmp_path / 'k.pub').read_text().split(' ')[1]}\n")
    ssh = agent_pipes.openssh_argv(address=host.spec.addr, port=22, user="root",
                                   key_file=str(host.ssh.client_key), known_hosts=str(wrong),
                                   connect_timeout_s=5.0)
    before = _agents(host)
    with netns.inside(CONTROLLER_NS):
        refused = RemoteInstruments("hia", remote.instruments.transport, ssh=ssh,
                                    agent_dir=agent_dir(host), lab=LAB,
                                    cache_dir=remote.instruments.cache_dir)
    with pytest.raises(LabFailure) as info:
        refused.l2_probe(BRIDGE, NOBODY_MAC, timeout=0.1)
    assert "\n" not in str(info.value)
    assert info.value.summary.startswith("host hia: instrument agent, op l2probe: the agent "
                                         "exited 255: ")
    assert "Host key verification failed" in info.value.summary
    assert set(_agents(host)) <= set(before)  # none started (one ending may be gone)


@ON_OPENSSH
def test_the_agent_is_pushed_once_per_hash(sides: tuple[Side, Side, NamespaceHost]) -> None:
    _, remote, host = sides
    assert isinstance(remote.instruments, RemoteInstruments)
    with another(remote, agent_dir=agent_dir(host), cache_dir=remote.instruments.cache_dir,
                 lab=LAB) as again:
        assert again.l2_probe(BRIDGE, NOBODY_MAC, timeout=0.1) is None
    assert again.pushes == 0  # the hash is on the host already


@ON_BOTH_PIPES
def test_a_killed_agent_is_one_lab_failure_line(sides: tuple[Side, Side, NamespaceHost]) -> None:
    _, remote, host = sides
    assert isinstance(remote.instruments, RemoteInstruments)
    _no_agents(remote.instruments, host)
    short = another(remote, agent_dir=agent_dir(host), cache_dir=remote.instruments.cache_dir,
                    deadline_s=1.5, lab=LAB)
    t0 = time.monotonic()
    with pytest.raises(LabFailure) as info:
        short.run_load(_spec(duration=20.0, bytes_per_connection=None))
    assert time.monotonic() - t0 < 4.0
    err = info.value
    assert "\n" not in str(err)
    assert "host hia" in err.summary and "op load" in err.summary
    assert "no result within 1.5s" in err.summary
    assert wait_gone(_agents(host), timeout=5.0) == []  # the agent exited with the channel


@ON_BOTH_PIPES
def test_no_result_and_a_non_zero_exit_are_one_line(
        sides: tuple[Side, Side, NamespaceHost]) -> None:
    _, remote, host = sides
    assert isinstance(remote.instruments, RemoteInstruments)
    for python, said in (("echo", "no JSON result"), ("false", "the agent exited 1")):
        broken = another(remote, agent_dir=agent_dir(host), python=python,
                         cache_dir=remote.instruments.cache_dir)
        with pytest.raises(LabFailure) as info:
            broken.l2_probe(BRIDGE, NOBODY_MAC, timeout=0.1)
        assert "\n" not in str(info.value)
        assert info.value.summary.startswith("host hia: instrument agent, op l2probe: " + said)
        # the same when the agent has certainly ended before the request is sent (the
        # race above goes either way): its own words, not "the SSH channel failed"
        until = time.monotonic() + 10
        agent = broken._take("l2probe", until)
        while not (agent.pipe.ended() and agent.pipe.exit_known()):
            assert time.monotonic() < until, "the broken agent did not end"
            time.sleep(0.02)
        with pytest.raises(LabFailure) as info:
            broken._ask(agent, "l2probe", {}, (until, 10.0))
        assert info.value.summary.startswith("host hia: instrument agent, op l2probe: " + said)


def _agents(host: NamespaceHost) -> list[int]:
    """Processes in the host's namespace running an agent zipapp."""
    found = []
    for pid in netns.pids(host.spec.netns):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"agent.pyz" in cmdline:
            found.append(pid)
    return found


@ON_BOTH_PIPES
def test_agents_stay_up_and_a_probe_during_a_load_gets_its_own(
        sides: tuple[Side, Side, NamespaceHost]) -> None:
    _, remote, host = sides
    assert isinstance(remote.instruments, RemoteInstruments)
    _no_agents(remote.instruments, host)
    assert remote.probe(NOBODY_MAC, timeout=0.05) is None
    first = _agents(host)
    assert len(first) == 1  # one idle agent, kept between calls
    assert remote.probe(NOBODY_MAC, timeout=0.05) is None
    assert _agents(host) == first  # reused, no new interpreter
    box: dict[str, LoadResult] = {}
    loader = threading.Thread(target=lambda: box.update(
        r=remote.run_load(_spec(duration=2.0, bytes_per_connection=None))))
    loader.start()
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        reply = remote.probe(RESPONDER_MAC)
        took = time.monotonic() - t0
        running = loader.is_alive()
    finally:
        loader.join(timeout=30)
    assert isinstance(reply, ProbeReply)
    # the load (2 s) still ran when the probe returned: it did not wait for the load
    # (a fixed bound on `took` failed on a busy machine: a new agent's start is in it)
    assert running, f"the probe waited for the load ({took:.2f}s)"
    assert box["r"].ok, box["r"].errors
    assert len(_agents(host)) == 2  # the second agent started for the probe, now idle too


def _no_agents(instruments: RemoteInstruments, host: NamespaceHost) -> None:
    """Stop ``instruments``' idle agents; none is left running on the host."""
    instruments.close()
    assert wait_gone(_agents(host), timeout=5.0) == []


@ON_BOTH_PIPES
def test_an_agent_that_died_idle_is_replaced(sides: tuple[Side, Side, NamespaceHost]) -> None:
    _, remote, host = sides
    assert isinstance(remote.instruments, RemoteInstruments)
    _no_agents(remote.instruments, host)
    assert remote.probe(NOBODY_MAC, timeout=0.05) is None
    (idle,) = _agents(host)
    os.kill(idle, signal.SIGKILL)  # the agent this test's call started
    assert wait_gone([idle]) == []
    ends = time.monotonic() + 5.0  # sshd tells the controller (EOF, exit signal)
    while remote.instruments.idle_agents() and time.monotonic() < ends:
        time.sleep(0.01)
    assert remote.instruments.idle_agents() == 0
    reply = remote.probe(RESPONDER_MAC)
    assert isinstance(reply, ProbeReply)
    assert len(_agents(host)) == 1 and _agents(host) != [idle]


@ON_OPENSSH
def test_the_agent_refuses_targets_outside_its_hosts_lab_bridges(
        sides: tuple[Side, Side, NamespaceHost]) -> None:
    """The route guard on the host: an address the host routes elsewhere than through a
    bridge of the lab (here: the controller's end of the host's link), a bridge of another
    lab, and an L2 probe through a port that is not a bridge are refused, one line each,
    as OutsideLab; nothing is sent."""
    _, remote, host = sides
    assert isinstance(remote.instruments, RemoteInstruments)
    outside = host.spec.controller_addr
    with pytest.raises(OutsideLab) as info:
        remote.run_load(LoadSpec(targets=(Target(outside, 22),), connections=1,
                                 duration=None, bytes_per_connection=1024, progress=False))
    assert info.value.summary.startswith(f"host hia: echo load to {outside}: {outside} is "
                                         f"routed via {host.spec.veth[1]} on this host")
    assert "\n" not in info.value.summary
    with pytest.raises(OutsideLab) as info:
        remote.probe(RESPONDER_MAC, bridge=RESPONDER_IF)
    assert info.value.summary.startswith(f"host hia: L2 probe through {RESPONDER_IF}: "
                                         f"{RESPONDER_IF} is not a bridge of lab {LAB}")
    with another(remote, lab="dliaother", agent_dir=agent_dir(host),
                 cache_dir=remote.instruments.cache_dir) as other:
        with pytest.raises(OutsideLab) as info:
            other.run_load(_spec())
        assert f"routed via {BRIDGE} on this host, not a bridge of lab dliaother" \
            in info.value.summary
    assert remote.run_load(_spec()).ok  # the lab's own bridge: allowed


@ON_OPENSSH
def test_lab_down_removes_only_the_labs_agent_directory(
        sides: tuple[Side, Side, NamespaceHost]) -> None:
    """`lab down`'s step on each host: the lab's agent directory goes (a symlink in it
    is removed, not followed); another lab's directory, even one whose name the lab's
    starts, stays; a second run finds none; an unreachable host is one progress line."""
    _, remote, host = sides
    assert isinstance(remote.instruments, RemoteInstruments)
    remote.instruments.ensure_agent()  # the fixture's lab has its own (run alone too)
    mine = agent_dir(host, "dliadown")
    with another(remote, agent_dir=mine, cache_dir=remote.instruments.cache_dir) as down_lab:
        pushed = Path(str(down_lab.ensure_agent()))
    outside = Path(str(agent_dir(host, "dliadow")))  # another lab's (a prefix of ours)
    outside.mkdir(mode=0o700, parents=True)
    (outside / "keep").write_text("another lab's\n")
    (Path(str(mine)) / "link").symlink_to(outside)
    gw = Gateway("hia", host.spec.addr, 22, "root", str(host.ssh.client_key),
                 str(host.ssh.known_hosts))
    said: list[str] = []
    with netns.inside(CONTROLLER_NS):
        remove_host_agent_dir("dliadown", HostTarget("hia", "namespace", "", "", gw),
                              said.append, agent_base(host))
        remove_host_agent_dir("dliadown", HostTarget("hia", "namespace", "", "", gw),
                              said.append, agent_base(host))
        dead = Gateway("hia", host.spec.addr, 1, "root", gw.key_file, gw.known_hosts)
        remove_host_agent_dir("dliadown", HostTarget("hia", "namespace", "", "", dead),
                              said.append, agent_base(host))
    assert not pushed.exists() and not Path(str(mine)).exists()
    assert (outside / "keep").read_text() == "another lab's\n"
    assert Path(str(agent_dir(host))).is_dir()  # the fixture's lab: untouched
    assert said[:2] == [f"host agent directory {mine} removed",
                        f"host agent directory {mine} absent (no agent ran there)"]
    assert said[2].startswith(f"unreachable, the host agent's directory {mine} is left: ")
    assert len(said) == 3


def _ends(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in ("fin", "rst", "err", "live")}


@ON_OPENSSH
def test_held_clients_echo_and_end_alike_on_both_sides(
        sides: tuple[Side, Side, NamespaceHost]) -> None:
    """Four clients held on each side: each echoes on demand; the close ends two with a
    FIN and two with a RST, as the echo server's kernel saw them; the agent that held
    them serves the next call."""
    local, remote, _ = sides
    for side in (local, remote):
        before = side.report()
        clients = side.open_clients(4)
        try:
            assert len(set(clients.ports)) == 4, side.ns
            for i in range(4):
                assert clients.round_trip(i, f"held {i}\n".encode(), 5.0) == "echoed"
        finally:
            assert clients.close() == 4
        assert _ends(before, side.report()) == {"fin": 2, "rst": 2, "err": 0, "live": 0}, \
            side.ns
    assert isinstance(remote.instruments, RemoteInstruments)
    assert remote.instruments.idle_agents() >= 1
    assert remote.probe(RESPONDER_MAC) is not None  # served by an agent, maybe that one


@ON_BOTH_PIPES
def test_held_clients_end_with_their_agent(sides: tuple[Side, Side, NamespaceHost]) -> None:
    """The agent holding clients is killed on its host: its kernel ends the connections
    (nothing lingers at the echo server), the next round trip is one LabFailure line,
    and closing afterwards closes nothing and raises nothing."""
    _, remote, host = sides
    assert isinstance(remote.instruments, RemoteInstruments)
    _no_agents(remote.instruments, host)
    before = remote.report()
    clients = remote.open_clients(2)
    (holder,) = _agents(host)
    os.kill(holder, signal.SIGKILL)
    assert wait_gone([holder]) == []
    after = remote.report()
    assert after["live"] == 0 and sum(_ends(before, after)[k] for k in ("fin", "rst")) == 2
    with pytest.raises(LabFailure) as info:
        clients.round_trip(0, b"after the kill\n", 2.0)
    assert "\n" not in str(info.value) and "op clients-echo" in info.value.summary
    assert clients.close() == 0


@ON_OPENSSH
def test_a_client_that_cannot_connect_is_the_same_driver_failure_on_both_sides(
        sides: tuple[Side, Side, NamespaceHost]) -> None:
    local, remote, _ = sides
    caught: list[LabError] = []
    for side in (local, remote):
        with pytest.raises(DriverFailure) as info:
            side.open_clients(1, port=ECHO_PORT + 2)  # nothing listens: the kernel refuses
        caught.append(info.value)
    here, there = caught
    assert here.summary.startswith("wskecho: client 1 of 1 could not connect to ")
    assert there.summary == f"host hia: {here.summary}"
    assert remote.report()["live"] == 0


@ON_OPENSSH
def test_carries_ip_alike_and_clients_refused_outside_the_lab(
        sides: tuple[Side, Side, NamespaceHost]) -> None:
    """IP liveness: the target's kernel refuses port 9 (carries), an address behind the
    bridge that nobody holds does not answer (no ARP reply: does not carry). Held clients
    to an address outside the lab's bridges are refused on the host, as the load is."""
    local, remote, host = sides
    for side in (local, remote):
        netns.ip("-n", side.ns, "route", "replace", f"{ABSENT_ADDR}/32", "dev", BRIDGE)
        assert side.carries_ip(TARGET_ADDR), side.ns
        t0 = time.monotonic()
        assert not side.carries_ip(ABSENT_ADDR), side.ns
        assert time.monotonic() - t0 < 4.0
    outside = host.spec.controller_addr
    with pytest.raises(OutsideLab) as info:
        remote.instruments.open_clients([outside], 22, "wskecho", 2.0)
    assert info.value.summary.startswith(f"host hia: echo client to {outside}: ")
