"""Host-side instruments wherever the bridge is: in-process here, or through an agent.

The scenarios' host-side instruments -- the L2 echo probe on a lab bridge and the TCP
echo load at the test NICs -- must run on the hypervisor host that owns the bridge
(issue 12). :class:`Instruments` is what the scenarios call;

* :class:`LocalInstruments` runs today's code in this process (unchanged behaviour);
* :class:`RemoteInstruments` runs the same code on another host: it pushes a
  self-contained zipapp (the instrument modules and their pure dependencies; no
  libvirt, no paramiko) over SFTP once per content hash into the lab's own directory
  on the host (0700; `lab down` removes it), starts ``python3 agent.pyz serve``
  through SSH (its own OpenSSH client process, else an exec channel of the lab's
  paramiko connection: :mod:`lab.agent_pipes`), writes each request as one JSON line
  to its stdin and reads one JSON result line from its stdout, under a hard deadline
  per call. Agents stay up between calls (an SSH session and an interpreter start cost
  ~0.1-0.3 s, more than a probe); concurrent calls (a probe during a load) each get
  their own. At a deadline its pipe is closed and the agent, seeing its stdin hang up,
  exits mid-operation. Echo clients held across calls (:meth:`Instruments.open_clients`) live
  in one agent, set aside for them until they are closed; if that agent goes, its
  connections go with its process.

Before it sends, the agent checks its targets' routes on its host
(:func:`lab.route_guard.require_host_target`): only through the lab's bridges there.
Lab errors cross the wire by class name (:mod:`lab.hostagent_wire`): a verdict the
instruments give here is given with the same class there. Anything else that goes
wrong with the agent is one LabFailure line naming the host and the operation.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import select
import shlex
import stat
import tempfile
import threading
import time
import weakref
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, TypeVar

import paramiko

from lab import echo_clients, l2probe, load
from lab.agent_pipes import AgentPipe, ChannelPipe, ProcessPipe
from lab.echo_clients import HeldClients, Outcome
from lab.errors import LabFailure
from lab.hostagent_wire import (
    OP_CARRIES_IP,
    OP_CLIENTS_CLOSE,
    OP_CLIENTS_ECHO,
    OP_CLIENTS_OPEN,
    OP_L2PROBE,
    OP_LOAD,
    WireError,
    carries_from_json,
    closed_from_json,
    decode_error,
    outcome_from_json,
    ports_from_json,
    probe_from_json,
    result_from_json,
    spec_to_json,
)
from lab.l2probe import ProbeReply
from lab.load import LoadResult, LoadSpec

T = TypeVar("T")

#: where agents live on a host: one directory per lab (:func:`lab_agent_dir`), in it one
#: subdirectory per content hash
AGENT_DIR = PurePosixPath("/var/lib/driver-lab/agent")
#: added to an operation's own bound for the SSH exec, the interpreter start, the push
SLACK_S = 15.0
#: bound of a byte-count load (no duration: its stall watchdog bounds each connection)
BYTE_RUN_BOUND_S = 600.0
#: the lab's modules the agent runs (and nothing that imports libvirt or paramiko)
AGENT_MODULES = ("lab/__init__.py", "lab/errors.py", "lab/hosttools.py", "lab/netns.py",
                 "lab/echo_clients.py",
                 "lab/naming.py", "lab/route_guard.py",
                 "lab/l2probe.py", "lab/hostagent_wire.py", "lab/hostagent_main.py",
                 "lab/load/__init__.py", "lab/load/engine.py", "lab/load/conns.py",
                 "lab/load/histogram.py", "lab/load/pattern.py", "lab/load/progress.py",
                 "lab/load/result.py")
#: the pure-Python part of the hdrhistogram package (the latency histogram)
HDRH_MODULES = ("__init__.py", "histogram.py", "iterators.py", "codec.py")
#: hdrh imports its C codec at import time; the lab never encodes histograms
PYHDRH_STUB = ('"""Stand-in for hdrhistogram\'s C codec: the agent never encodes."""\n\n\n'
               'def _absent(*_args: object) -> None:\n'
               '    raise NotImplementedError("histogram encoding is not in the agent")\n\n\n'
               'add_array = decode = encode = _absent\n')
ZIP_MAIN = ('import sys\n'
            'if sys.version_info < (3, 11):\n'
            '    sys.exit("driver-lab agent needs Python >= 3.11 on this host, not "\n'
            '             + sys.version.split()[0])\n'
            'from lab.hostagent_main import main\n'
            'sys.exit(main(sys.argv))\n')


class Clients(Protocol):
    """Echo connections held open on the VM's host (:class:`lab.echo_clients.HeldClients`
    there); :meth:`close` ends them, even ones with a FIN, odd ones with a RST."""

    @property
    def ports(self) -> tuple[int, ...]:
        """Each connection's local port on its host."""
        ...

    def round_trip(self, index: int, payload: bytes, stall_s: float) -> Outcome:
        """One echo round trip on connection ``index``: "echoed" or "reset"; a wrong byte
        is a DriverFailure, no progress within ``stall_s`` a DriverHang."""
        ...

    def close(self) -> int:
        """Close them all; how many were open."""
        ...


class Instruments(Protocol):
    """The host-side instruments of one hypervisor host."""

    #: the host's name (in errors and evidence)
    host: str

    def l2_probe(self, bridge: str, mac: str, timeout: float = 2.0) -> ProbeReply | None:
        """One L2 echo probe to ``mac`` through ``bridge``; None when none answered
        within ``timeout`` (as :func:`lab.l2probe.probe`)."""
        ...

    def run_load(self, spec: LoadSpec) -> LoadResult:
        """Run an echo load (as :func:`lab.load.run_load`)."""
        ...

    def open_clients(self, addresses: Sequence[str], port: int, who: str,
                     timeout: float) -> Clients:
        """One echo connection to each of ``addresses`` (a connect that fails is a
        DriverFailure of ``who``), held until closed."""
        ...

    def carries_ip(self, address: str, timeout: float = 2.0) -> bool:
        """``address`` passes IP at all (:func:`lab.echo_clients.carries_ip`)."""
        ...


class LocalInstruments:
    """The instruments of the host this process runs on: today's code, in-process."""

    def __init__(self, host: str = "local") -> None:
        self.host = host

    def l2_probe(self, bridge: str, mac: str, timeout: float = 2.0) -> ProbeReply | None:
        return l2probe.probe(bridge, mac, timeout=timeout)

    def run_load(self, spec: LoadSpec) -> LoadResult:
        return load.run_load(spec)

    def open_clients(self, addresses: Sequence[str], port: int, who: str,
                     timeout: float) -> Clients:
        return HeldClients(addresses, port, who, timeout)

    def carries_ip(self, address: str, timeout: float = 2.0) -> bool:
        return echo_clients.carries_ip(address, timeout)


@dataclass(frozen=True)
class AgentBundle:
    """The agent zipapp: its content hash and where it is on this machine."""

    hash: str
    path: Path


def agent_files() -> dict[str, bytes]:
    """Archive name -> content of everything the zipapp holds."""
    root = Path(__file__).resolve().parent.parent
    files = {name: (root / name).read_bytes() for name in AGENT_MODULES}
    spec = importlib.util.find_spec("hdrh")
    if spec is None or spec.origin is None:
        raise LabFailure("building the host agent: the hdrhistogram package is not installed",
                         hint="run `make setup`")
    hdrh = Path(spec.origin).parent
    files.update({f"hdrh/{name}": (hdrh / name).read_bytes() for name in HDRH_MODULES})
    files["pyhdrh.py"] = PYHDRH_STUB.encode()
    files["__main__.py"] = ZIP_MAIN.encode()
    return files


def build_agent(cache_dir: Path | None = None) -> AgentBundle:
    """The zipapp for the current sources, built once per content hash (reproducible:
    fixed timestamps and order, so the same sources give the same hash everywhere)."""
    files = agent_files()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    bundle_hash = digest.hexdigest()[:20]
    cache = cache_dir or Path(tempfile.gettempdir()) / f"driver-lab-agent-{os.geteuid()}"
    path = cache / f"agent-{bundle_hash}.pyz"
    if path.exists():
        return AgentBundle(bundle_hash, path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, files[name], zipfile.ZIP_DEFLATED)
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(b"#!/usr/bin/env python3\n" + buf.getvalue())
    os.replace(tmp, path)
    return AgentBundle(bundle_hash, path)


def lab_agent_dir(lab: str, base: PurePosixPath = AGENT_DIR) -> PurePosixPath:
    """Lab ``lab``'s agent directory on a host (`lab down` removes it). A lab name is
    unique on a host (its bridges and networks are named by it), so is this directory."""
    return base / f"lab-{lab}"


def remove_agent_dir(transport: paramiko.Transport, path: PurePosixPath) -> bool:
    """Remove the agent directory ``path`` and what is in it on the host (symlinks are
    removed, never followed); False when there is none. Raises paramiko.SSHException
    or OSError when the host does not let it."""
    sftp = paramiko.SFTPClient.from_transport(transport)
    if sftp is None:
        raise paramiko.SSHException("the host refused the sftp subsystem")
    with contextlib.closing(sftp):
        try:
            st = sftp.lstat(str(path))
        except FileNotFoundError:
            return False
        if st.st_mode is None or not stat.S_ISDIR(st.st_mode):
            raise OSError(f"{path} is not a directory (not an agent directory): kept")
        _rmtree(sftp, path)
    return True


def _rmtree(sftp: paramiko.SFTPClient, path: PurePosixPath) -> None:
    for entry in sftp.listdir_attr(str(path)):  # lstat attributes (OpenSSH readdir)
        child = path / entry.filename
        if entry.st_mode is not None and stat.S_ISDIR(entry.st_mode):
            _rmtree(sftp, child)
        else:
            sftp.remove(str(child))
    sftp.rmdir(str(path))


class RemoteInstruments:
    """The instruments of another host, run by the agent there over SSH.

    ``transport`` is an authenticated SSH connection to the host (its key pinned by
    whoever opened it); the agent runs as that user, so L2 probes need root there.
    ``netns``: the network namespace on the host the bridges live in (None: the SSH
    session's own). ``lab``: the lab's name; the agent then goes to the lab's own
    directory (:func:`lab_agent_dir`, unless ``agent_dir`` says otherwise) and sends
    only through that lab's bridges (else through any bridge of the host).
    ``deadline_s`` overrides every operation's own bound (tests). ``ssh``: the OpenSSH
    client command that reaches the same host as that user
    (:func:`lab.agent_pipes.openssh_argv`): each agent then runs through its own ``ssh``
    process (:class:`~lab.agent_pipes.ProcessPipe`); None: in exec channels of
    ``transport`` (which copies the agent there either way).
    :meth:`close` (or the transport's end) stops the agents.
    """

    def __init__(self, host: str, transport: paramiko.Transport, *,
                 agent_dir: PurePosixPath | None = None, python: str = "python3",
                 netns: str | None = None, cache_dir: Path | None = None,
                 deadline_s: float | None = None, lab: str | None = None,
                 ssh: Sequence[str] | None = None) -> None:
        self.host = host
        self.transport = transport
        self.ssh = tuple(ssh) if ssh is not None else None
        #: the network namespace the transport was made in (an agent's ssh connects from
        #: there too); closed with this object
        self._netns_fd: int | None = None
        if self.ssh is not None:
            self._netns_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            weakref.finalize(self, os.close, self._netns_fd)
        self.lab = lab
        self.agent_dir = agent_dir or (AGENT_DIR if lab is None else lab_agent_dir(lab))
        self.python = python
        self.netns = netns
        self.cache_dir = cache_dir
        self.deadline_s = deadline_s
        #: how many times this instance copied the agent to the host
        self.pushes = 0
        self._ready: PurePosixPath | None = None
        self._idle: list[_Agent] = []
        self._lock = threading.Lock()
        self._push_lock = threading.Lock()

    def __enter__(self) -> RemoteInstruments:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def l2_probe(self, bridge: str, mac: str, timeout: float = 2.0) -> ProbeReply | None:
        request = {"bridge": bridge, "mac": mac, "timeout": timeout, "netns": self.netns,
                   "lab": self.lab}
        doc = self._call(OP_L2PROBE, request, timeout + SLACK_S)
        return self._decode(OP_L2PROBE, probe_from_json, doc)

    def run_load(self, spec: LoadSpec) -> LoadResult:
        if spec.duration is None:
            bound = BYTE_RUN_BOUND_S
        else:  # the engine's own deadline (lab.load.engine._deadline)
            bound = spec.duration + spec.connect_timeout + 2 * spec.stall_timeout + 10.0
        request = {"spec": spec_to_json(spec), "netns": self.netns, "lab": self.lab}
        doc = self._call(OP_LOAD, request, bound + SLACK_S)
        return self._decode(OP_LOAD, result_from_json, doc)

    def open_clients(self, addresses: Sequence[str], port: int, who: str,
                     timeout: float) -> Clients:
        request = {"addresses": list(addresses), "port": port, "who": who,
                   "timeout": timeout, "netns": self.netns, "lab": self.lab}
        deadline = self._deadline(len(addresses) * timeout + SLACK_S)
        agent = self._take(OP_CLIENTS_OPEN, deadline[0])  # set aside until the clients close
        doc = self._ask(agent, OP_CLIENTS_OPEN, request, deadline)
        if doc["ok"] is not True:
            self._release(agent)  # it opened nothing (HeldClients closes what it opened)
        result = self._result(OP_CLIENTS_OPEN, doc)  # raises the agent's error
        try:
            ports = self._decode(OP_CLIENTS_OPEN, ports_from_json, result)
        except LabFailure:
            agent.close()  # its exit closes whatever it opened
            raise
        return RemoteClients(self, agent, ports)

    def carries_ip(self, address: str, timeout: float = 2.0) -> bool:
        request = {"address": address, "timeout": timeout, "netns": self.netns,
                   "lab": self.lab}
        doc = self._call(OP_CARRIES_IP, request, timeout + SLACK_S)
        return self._decode(OP_CARRIES_IP, carries_from_json, doc)

    def _fail(self, op: str, problem: str) -> LabFailure:
        return LabFailure(f"host {self.host}: instrument agent, op {op}: {problem}")

    def _decode(self, op: str, decode: Callable[[Any], T], doc: Any) -> T:
        try:
            return decode(doc)
        except (WireError, TypeError, ValueError) as exc:
            raise self._fail(op, f"malformed result ({exc})") from None

    def ensure_agent(self) -> PurePosixPath:
        """The agent's path on the host; copied there first unless its hash is there."""
        with self._push_lock:
            if self._ready is None:
                self._ready = self._push()
            return self._ready

    def _push(self) -> PurePosixPath:
        bundle = build_agent(self.cache_dir)
        remote_dir = self.agent_dir / bundle.hash
        remote = remote_dir / "agent.pyz"
        try:
            sftp = paramiko.SFTPClient.from_transport(self.transport)
            if sftp is None:
                raise paramiko.SSHException("the host refused the sftp subsystem")
            with contextlib.closing(sftp):
                if not _is_file(sftp, remote, bundle.path.stat().st_size):
                    _mkdirs(sftp, remote_dir)
                    tmp = remote_dir / f".agent.pyz.{os.getpid()}.tmp"
                    sftp.put(str(bundle.path), str(tmp))
                    sftp.chmod(str(tmp), 0o600)
                    sftp.posix_rename(str(tmp), str(remote))
                    self.pushes += 1
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._fail("push", f"copying the agent to {remote} failed: {exc}") from None
        return remote

    def idle_agents(self) -> int:
        """How many agents wait for a call, alive as far as this side has heard."""
        with self._lock:
            return sum(agent.alive() for agent in self._idle)

    def close(self) -> None:
        """Stop the idle agents (their channels close; each agent exits on stdin EOF)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for agent in idle:
            agent.close()

    def _call(self, op: str, request: dict[str, Any], bound: float) -> Any:
        """Run ``op`` on the host; its result document (errors raised as their class)."""
        deadline = self._deadline(bound)
        agent = self._take(op, deadline[0])
        doc = self._ask(agent, op, request, deadline)
        self._release(agent)
        return self._result(op, doc)

    def _deadline(self, bound: float) -> tuple[float, float]:
        """An operation's deadline (monotonic) and its length: ``bound``, or the test's."""
        seconds = self.deadline_s if self.deadline_s is not None else bound
        return time.monotonic() + seconds, seconds

    def _ask(self, agent: _Agent, op: str, request: dict[str, Any],
             deadline: tuple[float, float]) -> dict[str, Any]:
        """``op`` answered by ``agent``: its answer document; on any failure the agent is
        closed (it exits with its channel, mid-operation) and one LabFailure raised."""
        until, seconds = deadline
        try:
            line = agent.ask(json.dumps({"op": op, **request}) + "\n", until)
            return self._document(op, line)
        except _AgentGone as gone:
            agent.close()
            raise self._fail(op, str(gone)) from None
        except TimeoutError:
            agent.close()
            raise self._fail(op, f"no result within {seconds:g}s: the channel was "
                                 "closed, the agent exits with it") from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            agent.close()
            raise self._fail(op, f"the SSH channel failed: {exc}") from None
        except BaseException:  # interrupted, or not an agent that speaks the protocol
            agent.close()
            raise

    def _release(self, agent: _Agent) -> None:
        """``agent`` waits for the next call."""
        with self._lock:
            self._idle.append(agent)

    def _take(self, op: str, until: float) -> _Agent:
        """An idle agent, or a new one (concurrent calls each get their own)."""
        with self._lock:
            while self._idle:
                agent = self._idle.pop()
                if agent.alive():
                    return agent
                agent.close()  # it died while idle (killed on the host)
        command = shlex.join([self.python, str(self.ensure_agent()), "serve"])
        pipe: AgentPipe
        try:
            if self.ssh is not None and self._netns_fd is not None:
                pipe = ProcessPipe(self.ssh, command, self._netns_fd)
            else:
                pipe = ChannelPipe(self.transport, command,
                                   timeout=max(0.1, until - time.monotonic()))
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._fail(op, f"starting the agent failed: {exc}") from None
        return _Agent(pipe)

    def _document(self, op: str, line: str) -> dict[str, Any]:
        """The answer line as a result document, or one LabFailure line."""
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise self._fail(op, f"no JSON result on stdout ({exc}; got {line[:80]!r})") \
                from None
        if not isinstance(doc, dict) or not ((doc.get("ok") is True and "result" in doc)
                                             or doc.get("ok") is False):
            raise self._fail(op, f"malformed result document (got {line[:80]!r})")
        return doc

    def _result(self, op: str, doc: dict[str, Any]) -> Any:
        """The result; a lab error the agent reported is raised with its own class."""
        if doc["ok"] is True:
            return doc["result"]
        try:
            err = decode_error(doc.get("error"), f"host {self.host}: ")
        except WireError as exc:
            raise self._fail(op, f"malformed error ({exc})") from None
        raise err


class RemoteClients:
    """Echo clients held by one agent on another host (set aside for them: the agent's
    process holds the sockets between calls)."""

    def __init__(self, owner: RemoteInstruments, agent: _Agent, ports: tuple[int, ...]) -> None:
        self._owner = owner
        self._agent: _Agent | None = agent
        self._ports = ports

    @property
    def ports(self) -> tuple[int, ...]:
        return self._ports

    def _held(self, op: str) -> _Agent:
        if self._agent is None:
            raise self._owner._fail(op, "the clients are closed")
        return self._agent

    def round_trip(self, index: int, payload: bytes, stall_s: float) -> Outcome:
        agent = self._held(OP_CLIENTS_ECHO)
        request = {"index": index, "payload": payload.decode("latin-1"), "stall_s": stall_s}
        try:
            doc = self._owner._ask(agent, OP_CLIENTS_ECHO, request,
                                   self._owner._deadline(stall_s + SLACK_S))
        except BaseException:
            self._agent = None  # closed with its connections
            raise
        return self._owner._decode(OP_CLIENTS_ECHO, outcome_from_json,
                                   self._owner._result(OP_CLIENTS_ECHO, doc))

    def close(self) -> int:
        """Close them through their agent, which then serves other calls; when it does
        not answer, its channel closes and its exit closes the connections."""
        agent, self._agent = self._agent, None
        if agent is None or not agent.alive():
            if agent is not None:
                agent.close()
            return 0
        doc = self._owner._ask(agent, OP_CLIENTS_CLOSE, {}, self._owner._deadline(SLACK_S))
        self._owner._release(agent)
        return self._owner._decode(OP_CLIENTS_CLOSE, closed_from_json,
                                   self._owner._result(OP_CLIENTS_CLOSE, doc))


class _AgentGone(Exception):
    """The agent's channel ended before a whole result line (the agent exited)."""


class _Agent:
    """One running agent (``serve``) on its pipe, one request line at a time."""

    def __init__(self, pipe: AgentPipe) -> None:
        self.pipe = pipe
        self.out = bytearray()
        self.err = bytearray()

    def ask(self, request: str, until: float) -> str:
        """Send ``request``; the agent's answer line (TimeoutError at ``until``)."""
        try:
            self.pipe.send(request.encode())
        except (OSError, EOFError):
            if not self.ended():
                raise
            # it ended before reading the request: what it said (or how it exited) tells
            # why, not the closed pipe
        while True:
            self._drain()
            if b"\n" in self.out:
                break
            if self.pipe.out_ended():
                raise _AgentGone(self._exited(until))
            left = until - time.monotonic()
            if left <= 0:
                raise TimeoutError
            select.select([self.pipe], [], [], min(left, 1.0))
        line, _, rest = bytes(self.out).partition(b"\n")
        self.out = bytearray(rest)
        return line.decode(errors="replace")

    def _drain(self) -> None:
        self.out += self.pipe.read_out()
        err = self.pipe.read_err()
        if err:
            self.err = (self.err + err)[-4096:]  # its last words

    def _exited(self, until: float) -> str:
        """How the agent ended: its exit code and last stderr line."""
        stop = min(until, time.monotonic() + 5.0)
        while not self.pipe.exit_known() and time.monotonic() < stop:
            time.sleep(0.01)
            self._drain()
        self._drain()
        code = self.pipe.exit_code()
        how = f"exited {code}" if code is not None else "was killed (no exit status)"
        said = (bytes(self.err).decode(errors="replace").strip().splitlines()
                or ["(nothing on stderr)"])[-1][:300]
        if self.out:
            said = f"{said}; stdout: {bytes(self.out)[:80]!r}"
        return f"the agent {how}: {said}"

    def ended(self) -> bool:
        """The agent's side of the pipe is over (EOF, exit status or closed)."""
        return self.pipe.ended()

    def alive(self) -> bool:
        return not self.ended()

    def close(self) -> None:
        self.pipe.close()


def _is_file(sftp: paramiko.SFTPClient, path: PurePosixPath, size: int) -> bool:
    try:
        st = sftp.stat(str(path))
    except FileNotFoundError:
        return False
    return st.st_mode is not None and stat.S_ISREG(st.st_mode) and st.st_size == size


def _mkdirs(sftp: paramiko.SFTPClient, path: PurePosixPath) -> None:
    """``path`` and its missing parents, each made 0700 (the lab's; others keep theirs)."""
    for part in reversed((path, *path.parents)):
        try:
            sftp.stat(str(part))
        except FileNotFoundError:
            sftp.mkdir(str(part), 0o700)
            sftp.chmod(str(part), 0o700)


# ---- the instruments of the running test --------------------------------------------

_CURRENT: ContextVar[Instruments | None] = ContextVar("lab_instruments", default=None)
_LOCAL = LocalInstruments()


def current() -> Instruments:
    """The instruments of the enclosing :func:`using` block (the test's VM host), else
    the local, in-process ones. Threads a test starts take ``current()`` with them."""
    return _CURRENT.get() or _LOCAL


@contextmanager
def using(instruments: Instruments) -> Iterator[Instruments]:
    """Within this block (this thread), scenarios probe and load through ``instruments``."""
    token = _CURRENT.set(instruments)
    try:
        yield instruments
    finally:
        _CURRENT.reset(token)
