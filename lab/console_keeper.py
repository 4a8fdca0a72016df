"""Console keeper: every VM's serial console mirrored through libvirt into a controller file.

QEMU's own console log (``<serial type='pty'><log file=…/>``) lies on the hypervisor
host, which for a remote URI is another machine. The keeper opens each domain's
console as a libvirt stream (``virDomainOpenConsole``, the API behind ``virsh
console``), non-blocking and pumped by libvirt's event loop, and appends what arrives
to a file on the controller (0600, never truncated, written per chunk). A stream ends
when the domain's QEMU goes away (snapshot revert, reboot into a new QEMU, shutdown) or
the connection does (libvirtd restarted): the keeper opens it again with a back-off,
every attempt under a deadline. Each (re)attach and detach is one marked line in the
file, ``[lab console keeper: attached 2026-…Z (stream)]``, so evidence shows where
output may be missing.

A console has one stream at a time. The keeper opens it with
``VIR_DOMAIN_CONSOLE_FORCE`` for a new QEMU (taking it from whoever held it), but when
another session forces it away from a QEMU the keeper was attached to (``virsh console
--force``), it leaves that session the console, notes ``waiting …`` in the file and
attaches again, without force, once the session ends (QEMU's own log keeps that part).

One keeper process per lab (``python -m lab.console_keeper``), one thread per URI:
:func:`start` sets the consoles of one URI (in ``<state_dir>/console-keeper.json``, which
a running keeper follows) and launches the keeper detached if none runs (its pid in
``<state_dir>/console-keeper.pid``, its log in ``<state_dir>/logs/console-keeper.log``);
:func:`stop` ends exactly that pid. It never takes the lab's lock.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import libvirt

from lab.errors import LabFailure
from lab.hypervisor import start_event_loop

PID_FILE = "console-keeper.pid"
LOG_FILE = Path("logs") / "console-keeper.log"
#: deadlines of one connect / one console open (a hung libvirtd or ssh costs no more)
CONNECT_TIMEOUT_S = 30.0
OPEN_TIMEOUT_S = 15.0
#: back-off between attempts to open a console or connect: first, then doubling up to max
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0
#: how often the keeper looks at its consoles (and at a stop request)
TICK_S = 0.2
#: libvirt keepalive: a silent libvirtd closes the connection after interval * (count + 1)
KEEPALIVE = (5, 3)
STOP_TIMEOUT_S = 10.0
CHUNK = 65536

T = TypeVar("T")


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def marker(what: str) -> bytes:
    """The line the keeper writes into a console file when it (re)attaches or detaches."""
    return f"[lab console keeper: {what}]\n".encode()


def log(msg: str) -> None:
    """One line of the keeper's own log (its stderr is that file)."""
    sys.stderr.write(f"{now_text()} {msg}\n")
    sys.stderr.flush()


def bounded(what: str, fn: Callable[[], T], seconds: float,
            abort: threading.Event | None = None,
            on_late: Callable[[T], None] | None = None) -> T:
    """``fn()`` in a helper thread, waited for at most ``seconds`` or until ``abort`` is
    set (a call stuck in libvirt is abandoned, never waited on forever). What an
    abandoned call returns later is handed to ``on_late`` (to release it)."""
    box: dict[str, Any] = {}
    lock = threading.Lock()

    def run() -> None:
        try:
            value = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc
            return
        with lock:
            box["value"] = value
            late = box.get("abandoned", False)
        if late and on_late is not None:
            on_late(value)

    worker = threading.Thread(target=run, name=f"bounded {what}", daemon=True)
    worker.start()
    deadline = time.monotonic() + seconds
    while worker.is_alive() and time.monotonic() < deadline \
            and not (abort is not None and abort.is_set()):
        worker.join(min(TICK_S, max(0.0, deadline - time.monotonic())))
    with lock:
        if worker.is_alive():
            box["abandoned"] = True
            raise TimeoutError(f"{what}: no answer within {seconds:.0f}s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


class ConsoleFile:
    """The controller-side file of one console: append-only, 0600, one write per chunk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._write_failed = False
        self._fd = -1
        self._at_line_start = True
        self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                           0o600)
        os.fchmod(self._fd, 0o600)
        self._at_line_start = self._ends_with_newline(self.path)

    @staticmethod
    def _ends_with_newline(path: Path) -> bool:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return True
            fh.seek(size - 1)
            return fh.read(1) == b"\n"

    def write(self, data: bytes) -> None:
        with self._lock:
            self._write(data)

    def note(self, what: str) -> None:
        """A marker line, on a line of its own."""
        with self._lock:
            self._write((b"" if self._at_line_start else b"\n") + marker(what))

    def _write(self, data: bytes) -> None:
        if not data:
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:  # a full disk: the chunk is lost, the keeper goes on
            if not self._write_failed:
                log(f"{self.path}: write failed ({exc.strerror}); output is being lost")
            self._write_failed = True
            return
        self._write_failed = False
        self._at_line_start = data.endswith(b"\n")

    def reopen_if_replaced(self) -> None:
        """Open the path again if the file was removed or replaced under the keeper."""
        try:
            same = os.path.samestat(os.stat(self.path), os.fstat(self._fd))
        except OSError:
            same = False
        if not same:
            with self._lock:
                with suppress(OSError):
                    os.close(self._fd)
                self._fd = -1  # never a reused descriptor number
                self._open()
            log(f"{self.path}: the file was removed or replaced; writing to it again")

    def close(self) -> None:
        with self._lock, suppress(OSError):
            os.close(self._fd)


class Attachment:
    """One open console stream of one domain, drained by libvirt's event loop."""

    def __init__(self, conn: libvirt.virConnect, dom: libvirt.virDomain, out: ConsoleFile,
                 force: bool) -> None:
        self.out = out
        self.domain_id = dom.ID()
        self.ended = threading.Event()
        self.why = ""
        self.received = 0
        self._stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        flags = libvirt.VIR_DOMAIN_CONSOLE_FORCE if force else 0
        try:
            dom.openConsole(None, self._stream, flags)
        except BaseException:
            self.release()
            raise

    def begin(self) -> None:
        """Mark the attach in the file and start draining (from the keeper's thread)."""
        self.out.note(f"attached {now_text()} (stream)")
        try:
            self._stream.eventAddCallback(libvirt.VIR_STREAM_EVENT_READABLE
                                          | libvirt.VIR_STREAM_EVENT_ERROR
                                          | libvirt.VIR_STREAM_EVENT_HANGUP, self._on_event,
                                          None)
        except libvirt.libvirtError:
            self.close("its stream could not be watched")
            raise

    def release(self) -> None:
        """Abort the stream without a note (an attach that never began)."""
        with suppress(libvirt.libvirtError):
            self._stream.abort()

    def _end(self, why: str) -> None:
        if not self.ended.is_set():
            self.why = why
            self.ended.set()
            with suppress(libvirt.libvirtError):
                self._stream.eventUpdateCallback(0)

    def _on_event(self, stream: libvirt.virStream, events: int, _opaque: Any) -> None:
        """Runs in libvirt's event thread: drain what is readable into the file."""
        try:
            if events & libvirt.VIR_STREAM_EVENT_READABLE:
                self._drain(stream)
            if not self.ended.is_set() and events & (libvirt.VIR_STREAM_EVENT_ERROR
                                                     | libvirt.VIR_STREAM_EVENT_HANGUP):
                self._end("stream closed (hang-up)"
                          if events & libvirt.VIR_STREAM_EVENT_HANGUP else "stream error")
        except libvirt.libvirtError as exc:
            self._end(f"stream error: {exc.get_error_message()}")
        except Exception as exc:  # never let the event thread die
            self._end(f"keeper error: {exc!r}")

    def _drain(self, stream: libvirt.virStream) -> None:
        for _ in range(64):  # a bounded burst; the loop calls again when more is readable
            data = stream.recv(CHUNK)
            if isinstance(data, int):  # -2: nothing more now
                return
            if not data:
                self._end("end of stream")
                return
            self.received += len(data)
            self.out.write(data)

    def close(self, why: str) -> None:
        """Stop the stream (from the keeper's thread) and mark the detach in the file."""
        self._end(why)
        with suppress(libvirt.libvirtError):
            self._stream.eventRemoveCallback()
        with suppress(libvirt.libvirtError):
            self._stream.abort()
        self.out.note(f"detached {now_text()} ({self.why})")


@dataclass
class Console:
    """The keeper's view of one domain: its file, its attachment, when to try again."""

    domain: str
    out: ConsoleFile
    attachment: Attachment | None = None
    next_try: float = 0.0
    backoff: float = BACKOFF_FIRST_S
    last_error: str = ""
    attaches: int = 0
    #: the domain id (one per QEMU process) of the last attachment
    last_id: int | None = None
    #: another console session holds the console (noted in the file)
    held: bool = False

    def failed(self, error: str, held: bool) -> None:
        """An attempt failed; ``held``: another console session holds this same QEMU's
        console (noted once in the file: output meanwhile is only in QEMU's own log)."""
        if error != self.last_error:
            log(f"{self.domain}: console not open: {error} (retrying, back-off up to "
                f"{BACKOFF_MAX_S:.0f}s)")
        if held and not self.held:
            self.out.note(f"waiting {now_text()} (another console session holds the console: "
                          f"{error}; attaching again when it ends)")
        self.held = held
        self.last_error = error
        self.next_try = time.monotonic() + self.backoff
        self.backoff = min(BACKOFF_MAX_S, self.backoff * 2)


@dataclass
class Keeper:
    """Mirror every console of ``files`` (domain -> controller file) from ``uri``."""

    uri: str
    files: Mapping[str, Path]
    stop: threading.Event = field(default_factory=threading.Event)
    consoles: list[Console] = field(default_factory=list)
    connect_error: str = ""

    def run(self) -> None:
        start_event_loop()
        self.consoles = [Console(dom, ConsoleFile(path)) for dom, path in self.files.items()]
        backoff = BACKOFF_FIRST_S
        try:
            while not self.stop.is_set():
                conn = self._connect()
                if conn is None:
                    self.stop.wait(backoff)
                    backoff = min(BACKOFF_MAX_S, backoff * 2)
                    continue
                backoff = BACKOFF_FIRST_S
                self._serve(conn)
        finally:
            for console in self.consoles:
                console.out.close()

    def _connect(self) -> libvirt.virConnect | None:
        try:
            conn = bounded(f"connecting to {self.uri}", lambda: libvirt.open(self.uri),
                           CONNECT_TIMEOUT_S, self.stop, on_late=_close_quietly)
        except (libvirt.libvirtError, TimeoutError) as exc:
            if _text(exc) != self.connect_error:  # a long outage is one line, not thousands
                log(f"cannot connect to {self.uri}: {_text(exc)} (retrying, back-off up to "
                    f"{BACKOFF_MAX_S:.0f}s)")
            self.connect_error = _text(exc)
            return None
        with suppress(libvirt.libvirtError):
            conn.setKeepAlive(*KEEPALIVE)
        self.connect_error = ""
        log(f"connected to {self.uri}")
        return conn

    def _serve(self, conn: libvirt.virConnect) -> None:
        """Keep every console attached until stopped or the connection is lost."""
        lost = threading.Event()
        with suppress(libvirt.libvirtError):
            conn.registerCloseCallback(lambda *_: lost.set(), None)
        events = -1
        with suppress(libvirt.libvirtError):  # a started QEMU is attached at once
            events = conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                 self._on_lifecycle, None)
        for console in self.consoles:
            console.next_try, console.backoff = 0.0, BACKOFF_FIRST_S
        try:
            while not self.stop.is_set() and not lost.is_set() and conn.isAlive():
                for console in self.consoles:
                    self._tend(conn, console)
                self.stop.wait(TICK_S)
        finally:
            why = "keeper stopped" if self.stop.is_set() else f"connection to {self.uri} lost"
            log(why)
            for console in self.consoles:
                if console.attachment is not None:
                    console.attachment.close(why)
                    console.attachment = None
            with suppress(libvirt.libvirtError):
                conn.unregisterCloseCallback()
            if events >= 0:
                with suppress(libvirt.libvirtError):
                    conn.domainEventDeregisterAny(events)
            with suppress(libvirt.libvirtError):
                conn.close()

    def _on_lifecycle(self, _conn: Any, dom: libvirt.virDomain, event: int, _detail: int,
                      _opaque: Any) -> None:
        """libvirt's event thread: a domain started or resumed, try its console now."""
        if event in (libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_RESUMED):
            for console in self.consoles:
                if console.domain == dom.name():
                    console.next_try, console.backoff = 0.0, BACKOFF_FIRST_S

    def _tend(self, conn: libvirt.virConnect, console: Console) -> None:
        try:
            console.out.reopen_if_replaced()
        except OSError as exc:
            console.failed(f"{console.out.path}: {exc.strerror}", held=False)
            return
        att = console.attachment
        if att is not None:
            if not att.ended.is_set():
                return
            att.close(att.why)
            log(f"{console.domain}: console stream ended ({att.why}, {att.received} bytes)")
            console.attachment = None
        if time.monotonic() < console.next_try:
            return
        force = True
        try:
            dom = bounded(f"looking up {console.domain}",
                          lambda: conn.lookupByName(console.domain), OPEN_TIMEOUT_S, self.stop)
            # FORCE for a new QEMU (or a keeper just started); on the same QEMU the stream
            # ended because another session forced the console away: leave it that session
            force = bounded(f"reading the id of {console.domain}", dom.ID,
                            OPEN_TIMEOUT_S, self.stop) != console.last_id
            att = bounded(f"opening the console of {console.domain}",
                          lambda: Attachment(conn, dom, console.out, force), OPEN_TIMEOUT_S,
                          self.stop, on_late=Attachment.release)
            att.begin()
        except (libvirt.libvirtError, TimeoutError) as exc:
            console.failed(_text(exc), held=not force and self._same_qemu(conn, console))
            return
        console.attachment = att
        console.attaches += 1
        console.last_id = console.attachment.domain_id
        console.backoff, console.last_error, console.held = BACKOFF_FIRST_S, "", False
        log(f"{console.domain}: console attached (domain id {console.last_id}"
            f"{', forced' if force else ''}) -> {console.out.path}")

    def _same_qemu(self, conn: libvirt.virConnect, console: Console) -> bool:
        """Whether the domain still runs the QEMU last attached (the failed attempt met
        another console session, not a domain that went away meanwhile)."""
        try:
            return bool(bounded(f"looking up {console.domain}",
                                lambda: conn.lookupByName(console.domain).ID(),
                                OPEN_TIMEOUT_S, self.stop) == console.last_id)
        except (libvirt.libvirtError, TimeoutError):
            return False


def _close_quietly(conn: libvirt.virConnect) -> None:
    with suppress(libvirt.libvirtError):
        conn.close()


def _text(exc: BaseException) -> str:
    if isinstance(exc, libvirt.libvirtError):
        return str(exc.get_error_message())
    return str(exc)


# --- the process: launched detached, found again by its pid file ---

#: What the keeper keeps, per URI: {uri: {domain: file}}. :func:`start` updates it
#: atomically, the running keeper reads it again when it changes (no restart, and only
#: the consoles of a URI whose set changed are re-opened).
SPEC_FILE = "console-keeper.json"
Spec = dict[str, dict[str, str]]


def pid_file(state_dir: Path) -> Path:
    return Path(state_dir) / PID_FILE


def log_path(state_dir: Path) -> Path:
    return Path(state_dir) / LOG_FILE


def spec_file(state_dir: Path) -> Path:
    return Path(state_dir) / SPEC_FILE


def command(state_dir: Path) -> list[str]:
    """The keeper's command line (also how a running keeper is recognised)."""
    return [sys.executable, "-m", "lab.console_keeper", "--state-dir",
            str(Path(state_dir).resolve())]


def read_spec(state_dir: Path) -> Spec:
    try:
        data = json.loads(spec_file(state_dir).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(uri): {str(d): str(f) for d, f in vms.items()}
            for uri, vms in data.items() if isinstance(vms, dict)}


def _write_spec(state_dir: Path, spec: Spec) -> None:
    path = spec_file(state_dir)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _cmdline(pid: int) -> list[str] | None:
    """A live (not zombie) process's argv, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        with suppress(ChildProcessError):  # our own child: reap it
            os.waitpid(pid, os.WNOHANG)
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


def running(state_dir: Path) -> int | None:
    """The pid of this lab's running keeper (the pid file's process, if it is this lab's
    keeper), or None."""
    try:
        pid = int(pid_file(state_dir).read_text().strip())
    except (OSError, ValueError):
        return None
    argv = _cmdline(pid)
    want = command(state_dir)
    return pid if argv is not None and argv[1:5] == want[1:5] else None


def start(state_dir: Path, uri: str, vms: Mapping[str, Path]) -> int:
    """Keep the consoles ``vms`` (domain -> controller file) of ``uri`` (replacing what was
    kept for that URI; other URIs' consoles stay) and return the keeper's pid: the
    running keeper takes the change over, or one is launched detached. Hosts brought up
    at once call this from their own threads: one at a time."""
    with _starting:
        return _start(state_dir, uri, vms)


#: serializes :func:`start` within this process (one spec file, one keeper per lab)
_starting = threading.Lock()


def _start(state_dir: Path, uri: str, vms: Mapping[str, Path]) -> int:
    spec = read_spec(state_dir)
    spec[uri] = {dom: str(Path(path).resolve()) for dom, path in sorted(vms.items())}
    _write_spec(state_dir, spec)
    pid = running(state_dir)
    if pid is not None and _cmdline(pid) == command(state_dir):
        return pid
    if pid is not None:  # a keeper of an older command line: it does not read the spec
        _stop_pid(state_dir, pid, STOP_TIMEOUT_S)
    logfile = log_path(state_dir)
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("ab") as err:
        proc = subprocess.Popen(command(state_dir), stdin=subprocess.DEVNULL, stdout=err,
                                stderr=err, start_new_session=True, close_fds=True,
                                cwd=Path(__file__).resolve().parents[1])
    tmp = pid_file(state_dir).with_suffix(".tmp")
    tmp.write_text(f"{proc.pid}\n")
    os.replace(tmp, pid_file(state_dir))
    _launched[Path(state_dir).resolve()] = (proc, time.monotonic())
    return proc.pid


#: keepers this process launched and has not confirmed yet (state dir -> process, when)
_launched: dict[Path, tuple[subprocess.Popen[bytes], float]] = {}


def confirm(state_dir: Path, settle_s: float = 0.3) -> None:
    """Raise one LabFailure if the keeper :func:`start` launched for ``state_dir`` has
    exited (a keeper that cannot even start); called before the VMs whose consoles it
    keeps are started, so the launch costs no wait of its own: ``settle_s`` is only
    waited out for what is left of it since the launch."""
    launched = _launched.pop(Path(state_dir).resolve(), None)
    if launched is None:
        return
    proc, at = launched
    with suppress(subprocess.TimeoutExpired):
        rc = proc.wait(max(0.0, at + settle_s - time.monotonic()))
        pid_file(state_dir).unlink(missing_ok=True)
        raise LabFailure(f"the console keeper exited at once (exit code {rc})",
                         hint=f"see {log_path(state_dir)}")


def stop(state_dir: Path, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop this lab's keeper (SIGTERM, then SIGKILL after ``timeout``) and forget what it
    kept; True if one ran."""
    spec_file(state_dir).unlink(missing_ok=True)
    pid = running(state_dir)
    if pid is None:
        pid_file(state_dir).unlink(missing_ok=True)
        return False
    _stop_pid(state_dir, pid, timeout)
    return True


def _stop_pid(state_dir: Path, pid: int, timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if _cmdline(pid) is None:
                pid_file(state_dir).unlink(missing_ok=True)
                return
            time.sleep(0.05)
    raise LabFailure(f"the console keeper (pid {pid}) did not stop",
                     hint=f"kill {pid}; see {log_path(state_dir)}")


@dataclass
class Supervisor:
    """One :class:`Keeper` thread per URI of the spec file, following its changes."""

    state_dir: Path
    stop: threading.Event = field(default_factory=threading.Event)
    keepers: dict[str, tuple[Keeper, threading.Thread]] = field(default_factory=dict)

    def run(self) -> None:
        seen: Spec | None = None
        while not self.stop.is_set():
            spec = read_spec(self.state_dir)
            if spec != seen or any(not t.is_alive() for _, t in self.keepers.values()):
                self._follow(spec)
                seen = spec
            self.stop.wait(TICK_S if spec else 1.0)
        for uri in list(self.keepers):
            self._end(uri)

    def _follow(self, spec: Spec) -> None:
        for uri, (keeper, thread) in list(self.keepers.items()):
            wanted = {d: Path(f) for d, f in spec.get(uri, {}).items()}
            if keeper.files != wanted or not thread.is_alive():
                self._end(uri)
        for uri, vms in spec.items():
            if uri not in self.keepers and vms:
                keeper = Keeper(uri, {d: Path(f) for d, f in vms.items()})
                thread = threading.Thread(target=self._keep, args=(keeper,),
                                          name=f"keeper {uri}", daemon=True)
                thread.start()
                self.keepers[uri] = (keeper, thread)
                log(f"keeping {uri}: " + ", ".join(f"{d} -> {f}" for d, f in vms.items()))

    def _keep(self, keeper: Keeper) -> None:
        try:
            keeper.run()
        except Exception as exc:  # the supervisor starts it again
            log(f"keeper of {keeper.uri} failed: {exc!r}; starting it again")
            self.stop.wait(BACKOFF_MAX_S)

    def _end(self, uri: str) -> None:
        keeper, thread = self.keepers.pop(uri)
        keeper.stop.set()
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            log(f"keeper of {uri} did not stop within {STOP_TIMEOUT_S:.0f}s: abandoned")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.console_keeper",
                                description="mirror VM consoles through libvirt into files "
                                            f"(what: <state dir>/{SPEC_FILE})")
    p.add_argument("--state-dir", required=True, type=Path)
    args = p.parse_args(argv)
    supervisor = Supervisor(args.state_dir)

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        supervisor.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log(f"keeper pid {os.getpid()} started for {args.state_dir}")
    start_event_loop()
    supervisor.run()
    log("keeper exits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
